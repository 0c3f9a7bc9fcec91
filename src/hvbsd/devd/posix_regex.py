"""POSIX extended regular expressions (as FreeBSD's regcomp(3) reads them) in Python's `re`.

devd compiles every `match` string with ``REG_EXTENDED`` (plus ``REG_ICASE`` in
14.x and later).  Python's `re` accepts a different, larger language: handing
it the raw string would silently accept Perl-isms (``\\d``, ``(?i)``, lazy
``+?``) that FreeBSD rejects, and it would read bracket expressions such as
``[[:digit:]]`` or ``[\\]`` differently.  So the pattern is parsed here with
FreeBSD's rules and re-emitted as an equivalent Python pattern.

Rules followed (FreeBSD ``lib/libc/regex/regcomp.c``, C locale):
- ``\\`` before a letter, ``'`` or a backquote is an error; before ``<``/``>`` it
  is a word boundary; before anything else it is that character.
- ``*``, ``+``, ``?``, ``{`` with nothing to repeat, a repetition directly after
  ``^``, or two repetitions in a row are errors; ``{`` must be followed by a
  digit and counts go up to 255.
- Empty alternatives (``a||b``, ``(a|)``) are errors; ``()`` is allowed.
- Inside brackets a backslash is an ordinary character; ``[:class:]``,
  ``[=c=]`` and ``[.c.]`` are recognised; ranges follow byte order.
- ``$`` only matches at the very end (Python's ``$`` would also match before a
  trailing newline) and ``.`` matches a newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DUP_MAX = 255

_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}

_WORD_START = r"\b(?=\w)"
_WORD_END = r"\b(?<=\w)"


class PosixRegexError(ValueError):
    """The pattern is not a valid POSIX extended regular expression."""

    def __init__(self, pattern: str, position: int, reason: str) -> None:
        super().__init__(f"{reason} at offset {position} in {pattern!r}")
        self.pattern = pattern
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class Translation:
    """A POSIX ERE re-expressed for Python's `re`."""

    source: str
    python: str
    # `a|b` at the outermost level: devd's implicit ^...$ then anchors only
    # the first alternative at the start and the last at the end.
    top_level_alternation: bool


def _char_escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0
        self.top_level_alternation = False

    # -- cursor helpers -------------------------------------------------
    def more(self, n: int = 1) -> bool:
        return self.pos + n <= len(self.text)

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def eat(self, literal: str) -> bool:
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def fail(self, reason: str, position: int | None = None) -> PosixRegexError:
        return PosixRegexError(self.text, self.pos if position is None else position, reason)

    # -- grammar --------------------------------------------------------
    def parse(self) -> str:
        result = self.alternation(depth=0)
        if self.more():  # only a stray ')' stops the outer level early
            raise self.fail("unmatched ')'")
        return result

    def alternation(self, depth: int) -> str:
        branches = []
        while True:
            start = self.pos
            branch = self.branch(depth)
            if not branch and self.pos == start:
                raise self.fail("empty alternative (nothing between '|', '(' or ')')")
            branches.append(branch)
            if not self.eat("|"):
                break
            if depth == 0:
                self.top_level_alternation = True
        return "|".join(branches)

    def branch(self, depth: int) -> str:
        pieces = []
        while self.more() and self.peek() != "|" and not (depth > 0 and self.peek() == ")"):
            pieces.append(self.piece(depth))
        return "".join(pieces)

    def piece(self, depth: int) -> str:
        start = self.pos
        char = self.text[self.pos]
        self.pos += 1
        after_caret = False
        if char == "(":
            if not self.more():
                raise self.fail("unmatched '('", start)
            inner = "" if self.peek() == ")" else self.alternation(depth + 1)
            if not self.eat(")"):
                raise self.fail("unmatched '('", start)
            atom = f"(?:{inner})"
        elif char == ")":
            raise self.fail("unmatched ')'", start)
        elif char == "^":
            atom = r"(?:\A)"
            after_caret = True
        elif char == "$":
            atom = r"(?:\Z)"
        elif char in "*+?{":
            raise self.fail(f"repetition operator '{char}' has nothing to repeat", start)
        elif char == ".":
            atom = "."
        elif char == "[":
            atom = self.bracket(start)
        elif char == "\\":
            atom = self.escape(start)
        else:
            atom = re.escape(char)
        return atom + self.repetition(after_caret)

    def escape(self, start: int) -> str:
        if not self.more():
            raise self.fail("trailing backslash", start)
        char = self.text[self.pos]
        self.pos += 1
        if char == "<":
            return f"(?:{_WORD_START})"
        if char == ">":
            return f"(?:{_WORD_END})"
        if char.isalpha() or char in "'`":
            raise self.fail(
                f"'\\{char}' is not a POSIX extended regular expression escape", start
            )
        return re.escape(char)

    def repetition(self, after_caret: bool) -> str:
        if not self.more() or self.peek() not in "*+?{":
            return ""
        op_at = self.pos
        op = self.peek()
        if op == "{" and not (self.peek(1).isdigit() or self.peek(1) == ","):
            raise self.fail("'{' must start a repetition count such as {2} or {1,3}")
        self.pos += 1
        if after_caret:
            raise self.fail(f"repetition operator '{op}' after '^'", op_at)
        if op == "{":
            low = self.count()
            high: int | None = low
            if self.eat(","):
                if self.peek().isdigit():
                    high = self.count()
                    if low > high:
                        raise self.fail(f"invalid repetition count {{{low},{high}}}", op_at)
                else:
                    high = None
            if not self.eat("}"):
                if "}" not in self.text[self.pos :]:
                    raise self.fail("unmatched '{'", op_at)
                raise self.fail("invalid repetition count", op_at)
            result = f"{{{low}}}" if high == low else f"{{{low},{'' if high is None else high}}}"
        else:
            result = op
        if self.more() and (
            self.peek() in "*+?" or (self.peek() == "{" and self.peek(1).isdigit())
        ):
            raise self.fail(f"repetition operator '{self.peek()}' follows another one")
        return result

    def count(self) -> int:
        start = self.pos
        while self.more() and self.peek().isdigit():
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits or int(digits) > DUP_MAX:
            raise self.fail(f"invalid repetition count (0 to {DUP_MAX})", start)
        return int(digits)

    # -- bracket expressions --------------------------------------------
    def bracket(self, start: int) -> str:
        if self.eat("[:<:]]"):
            return f"(?:{_WORD_START})"
        if self.eat("[:>:]]"):
            return f"(?:{_WORD_END})"
        ranges: list[tuple[int, int]] = []
        invert = self.eat("^")
        if self.eat("]"):
            ranges.append((ord("]"), ord("]")))
        elif self.eat("-"):
            ranges.append((ord("-"), ord("-")))
        while self.more() and self.peek() != "]" and not self.text.startswith("-]", self.pos):
            ranges.extend(self.bracket_term())
        if self.eat("-"):
            ranges.append((ord("-"), ord("-")))
        if not self.eat("]"):
            raise self.fail("unmatched '['", start)
        body = "".join(
            _char_escape(low) if low == high else f"{_char_escape(low)}-{_char_escape(high)}"
            for low, high in ranges
        )
        return f"[{'^' if invert else ''}{body}]"

    def bracket_term(self) -> list[tuple[int, int]]:
        term_at = self.pos
        if self.peek() == "-":
            raise self.fail("invalid range in bracket expression ('-' out of place)")
        if self.peek() == "[" and self.peek(1) == ":":
            self.pos += 2
            if not self.more():
                raise self.fail("unmatched '['", term_at)
            name_at = self.pos
            while self.more() and self.peek().isalpha():
                self.pos += 1
            name = self.text[name_at : self.pos]
            if not self.more():
                raise self.fail("unmatched '['", term_at)
            if name not in _CLASSES or not self.eat(":]"):
                raise self.fail(f"unknown character class [:{name}:]", term_at)
            return list(_CLASSES[name])
        if self.peek() == "[" and self.peek(1) == "=":
            self.pos += 2
            char = self.collating_element("=", term_at)
            return [(ord(char), ord(char))]
        low = self.bracket_symbol()
        high = low
        if self.peek() == "-" and self.more(2) and self.peek(1) != "]":
            self.pos += 1
            high = "-" if self.eat("-") else self.bracket_symbol()
        if ord(low) > ord(high):
            raise self.fail(f"invalid range {low}-{high} in bracket expression", term_at)
        return [(ord(low), ord(high))]

    def bracket_symbol(self) -> str:
        if not self.more():
            raise self.fail("unmatched '['")
        symbol_at = self.pos
        if self.eat("[."):
            return self.collating_element(".", symbol_at)
        char = self.text[self.pos]
        self.pos += 1
        return char

    def collating_element(self, end: str, start: int) -> str:
        close = self.text.find(end + "]", self.pos)
        if close < 0:
            raise self.fail("unmatched '['", start)
        name = self.text[self.pos : close]
        if len(name) != 1:
            raise self.fail(f"unsupported collating element [{end}{name}{end}]", start)
        self.pos = close + 2
        return name


def translate(pattern: str) -> Translation:
    """Re-express a POSIX ERE for Python; raise PosixRegexError if FreeBSD would reject it."""
    parser = _Parser(pattern)
    python = parser.parse()
    return Translation(pattern, python, parser.top_level_alternation)


def compile_ere(pattern: str, *, icase: bool = True) -> re.Pattern[str]:
    """Compile a POSIX ERE; use ``.search()`` on the result, as regexec(3) searches."""
    flags = re.DOTALL | (re.IGNORECASE if icase else 0)
    return re.compile(translate(pattern).python, flags)
