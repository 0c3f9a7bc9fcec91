"""POSIX extended regular expressions, read as FreeBSD's regcomp(3) reads them and run
the way its regexec(3) runs them for devd: without backtracking, in bounded time.

devd compiles every `match` string with ``REG_EXTENDED | REG_NOSUB`` (plus
``REG_ICASE`` in 14.x and later; ``match::match`` in ``sbin/devd/devd.cc``) and
never calls setlocale(3), so patterns and values are bytes in the C locale.
With ``REG_NOSUB`` FreeBSD's ``matcher()`` (``lib/libc/regex/engine.c``) only
runs ``fast()``, a simulation of the set of states the automaton can be in:
time grows with pattern size times value length, never exponentially, so a
pattern such as ``(a+)+$`` costs devd nothing special.  Python's `re`
backtracks and would take exponential time on it, so this module does not use
`re`: the pattern is parsed with FreeBSD's rules into a small automaton, and
matching walks sets of its states (a lazily built DFA, cached per pattern).
Two budgets keep every call bounded whatever the input: a pattern that needs
more than `MAX_PROGRAM` automaton states is refused with `RegexTooLarge`, and
one match that would need more than `MATCH_BUDGET` steps raises
`RegexBudgetExceeded` instead of running on.  The parser keeps its own stack,
so deep nesting is no RecursionError.

Rules followed (FreeBSD ``lib/libc/regex/regcomp.c``, C locale):
- ``\\`` before an ASCII letter, ``'`` or a backquote is an error; before
  ``<``/``>`` it is a word boundary; before anything else it is that byte.
- ``*``, ``+``, ``?``, ``{`` with nothing to repeat, a repetition directly after
  ``^``, or two repetitions in a row are errors; ``{`` must be followed by a
  digit and counts go up to 255.
- Empty alternatives (``a||b``, ``(a|)``) are errors; ``()`` is allowed.
- Inside brackets a backslash is an ordinary character; ``[:class:]``,
  ``[=c=]`` and ``[.c.]`` are recognised; ranges follow byte order.
- ``^`` matches only at the start and ``$`` only at the very end (no
  ``REG_NEWLINE``); ``.`` matches any byte, a newline too.
- ``REG_ICASE`` folds ASCII letters only; a value is searched up to its first
  NUL byte, as regexec(3) reads a C string.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

DUP_MAX = 255
MAX_PROGRAM = 20_000  # automaton states one pattern may need
MATCH_BUDGET = 2_000_000  # automaton steps one match may take
_MAX_CACHED_STATES = 4_096  # DFA states kept per pattern before the cache is dropped
_MAX_CACHED_PCS = 400_000  # their total size

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

# opcodes of the automaton
_BYTE, _SPLIT, _JMP, _ASSERT, _MATCH = range(5)
# assertions, and the bits of the context they are evaluated in
_BOL, _EOL, _BOW, _EOW = range(4)
_AT_START, _AT_END, _PREV_WORD, _NEXT_WORD = 1, 2, 4, 8

_ALL_BYTES = (1 << 256) - 1
_LETTERS = sum(1 << code for code in range(0x41, 0x5B))  # A-Z
_WORD_BYTES = frozenset(
    [*range(0x30, 0x3A), *range(0x41, 0x5B), *range(0x61, 0x7B), 0x5F]
)  # engine.c ISWORD: isalnum() or '_' in the C locale

Instruction = tuple[int, int, int]
Fragment = list[Instruction]


class PosixRegexError(ValueError):
    """The pattern is not a valid POSIX extended regular expression."""

    def __init__(self, pattern: str, position: int, reason: str) -> None:
        super().__init__(f"{reason} at offset {position} in {_shown(pattern)}")
        self.pattern = pattern
        self.position = position  # byte offset in the UTF-8 pattern
        self.reason = reason


class RegexTooLarge(PosixRegexError):
    """The pattern is valid but needs more automaton states than hvbsd evaluates."""


class MatchUndecided(RuntimeError):
    """hvbsd cannot tell whether a value matches (the pattern or the work is too large)."""


class RegexBudgetExceeded(MatchUndecided):
    """One match needed more steps than `MATCH_BUDGET`; it was stopped, not finished."""

    def __init__(self, pattern: str, length: int) -> None:
        super().__init__(
            f"matching {_shown(pattern)} against a {length}-byte value needs more than "
            f"{MATCH_BUDGET} steps; stopped"
        )
        self.pattern = pattern
        self.length = length


def _shown(pattern: str, limit: int = 80) -> str:
    return repr(pattern) if len(pattern) <= limit else repr(pattern[:limit]) + "..."


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _is_letter(char: str) -> bool:
    return "a" <= char <= "z" or "A" <= char <= "Z"


def _fold(mask: int) -> int:
    """Add the other case of every ASCII letter in `mask` (REG_ICASE, C locale)."""
    upper = mask & _LETTERS
    lower = (mask >> 32) & _LETTERS
    return mask | (upper << 32) | lower


def _mask(ranges: list[tuple[int, int]]) -> int:
    mask = 0
    for low, high in ranges:
        mask |= ((1 << (high - low + 1)) - 1) << low
    return mask


@dataclass(frozen=True)
class Translation:
    """What parsing a POSIX ERE found out about it."""

    source: str
    # `a|b` at the outermost level: devd's implicit ^...$ then anchors only
    # the first alternative at the start and the last at the end.
    top_level_alternation: bool
    size: int  # automaton states


class _Frame:
    __slots__ = ("alternatives", "opened_at", "pieces", "saw_bar")

    def __init__(self, opened_at: int) -> None:
        self.alternatives: list[Fragment] = []
        self.pieces: list[Fragment] = []
        self.opened_at = opened_at
        self.saw_bar = False


class _Parser:
    """Iterative parser: a POSIX ERE (as bytes, one char per byte) -> automaton fragment."""

    def __init__(self, pattern: str, icase: bool) -> None:
        self.source = pattern
        # latin-1 over the UTF-8 bytes: one str character per byte, ord() = the byte
        self.text = pattern.encode("utf-8", "surrogateescape").decode("latin-1")
        self.pos = 0
        self.icase = icase
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

    def fail(self, reason: str, position: Optional[int] = None) -> PosixRegexError:
        return PosixRegexError(self.source, self.pos if position is None else position, reason)

    def too_large(self) -> PosixRegexError:
        return RegexTooLarge(
            self.source, self.pos,
            f"needs more than {MAX_PROGRAM} automaton states (repetitions multiply the "
            "size of what they repeat)",
        )

    def check_size(self, size: int) -> None:
        if size > MAX_PROGRAM:
            raise self.too_large()

    # -- fragments ------------------------------------------------------
    def byte_set(self, mask: int, invert: bool = False) -> Fragment:
        if self.icase:
            mask = _fold(mask)
        if invert:
            mask = _ALL_BYTES & ~mask
        return [(_BYTE, mask, 0)]

    def concat(self, pieces: list[Fragment]) -> Fragment:
        out: Fragment = []
        for piece in pieces:
            out.extend(piece)
        self.check_size(len(out))
        return out

    def alternate(self, branches: list[Fragment]) -> Fragment:
        if len(branches) == 1:
            return branches[0]
        out: Fragment = []
        jumps: list[int] = []
        for branch in branches[:-1]:
            out.append((_SPLIT, 1, len(branch) + 2))
            out.extend(branch)
            jumps.append(len(out))
            out.append((_JMP, 0, 0))  # patched below
        out.extend(branches[-1])
        self.check_size(len(out))
        end = len(out)
        for at in jumps:
            out[at] = (_JMP, end - at, 0)
        return out

    def repeat(self, atom: Fragment, low: int, high: Optional[int]) -> Fragment:
        size = len(atom)
        optional = 0 if high is None else high - low
        needed = size * low + (size + 2 if high is None else (size + 1) * optional)
        self.check_size(needed)
        out: Fragment = []
        for _ in range(low):
            out.extend(atom)
        if high is None:
            out.append((_SPLIT, 1, size + 2))
            out.extend(atom)
            out.append((_JMP, -(size + 1), 0))
        else:
            for _ in range(optional):
                out.append((_SPLIT, 1, size + 1))
                out.extend(atom)
        return out

    # -- grammar --------------------------------------------------------
    def parse(self) -> Fragment:
        stack = [_Frame(0)]
        while self.more():
            frame = stack[-1]
            char = self.peek()
            if char == "(":
                self.pos += 1
                if not self.more():
                    raise self.fail("unmatched '('", self.pos - 1)
                stack.append(_Frame(self.pos - 1))
            elif char == ")":
                if len(stack) == 1:
                    raise self.fail("unmatched ')'")
                empty_group = not frame.pieces and not frame.alternatives and not frame.saw_bar
                if not frame.pieces and not empty_group:
                    raise self.fail("empty alternative (nothing between '|', '(' or ')')")
                self.pos += 1
                stack.pop()
                group = [] if empty_group else self.alternate(
                    [*frame.alternatives, self.concat(frame.pieces)])
                stack[-1].pieces.append(self.repetition(group, after_caret=False))
            elif char == "|":
                if not frame.pieces:
                    raise self.fail("empty alternative (nothing between '|', '(' or ')')")
                self.pos += 1
                frame.alternatives.append(self.concat(frame.pieces))
                frame.pieces = []
                frame.saw_bar = True
                if len(stack) == 1:
                    self.top_level_alternation = True
            else:
                frame.pieces.append(self.piece())
        if len(stack) > 1:
            raise self.fail("unmatched '('", stack[-1].opened_at)
        frame = stack[0]
        if not frame.pieces:
            raise self.fail("empty alternative (nothing between '|', '(' or ')')")
        return self.alternate([*frame.alternatives, self.concat(frame.pieces)])

    def piece(self) -> Fragment:
        """One atom other than a group, and the repetition that follows it."""
        start = self.pos
        char = self.text[self.pos]
        self.pos += 1
        after_caret = False
        if char == "^":
            atom: Fragment = [(_ASSERT, _BOL, 0)]
            after_caret = True
        elif char == "$":
            atom = [(_ASSERT, _EOL, 0)]
        elif char in "*+?{":
            raise self.fail(f"repetition operator '{char}' has nothing to repeat", start)
        elif char == ".":
            atom = [(_BYTE, _ALL_BYTES, 0)]
        elif char == "[":
            atom = self.bracket(start)
        elif char == "\\":
            atom = self.escape(start)
        else:
            atom = self.byte_set(1 << ord(char))
        return self.repetition(atom, after_caret)

    def escape(self, start: int) -> Fragment:
        if not self.more():
            raise self.fail("trailing backslash", start)
        char = self.text[self.pos]
        self.pos += 1
        if char == "<":
            return [(_ASSERT, _BOW, 0)]
        if char == ">":
            return [(_ASSERT, _EOW, 0)]
        if _is_letter(char) or char in "'`":
            raise self.fail(
                f"'\\{char}' is not a POSIX extended regular expression escape", start
            )
        return self.byte_set(1 << ord(char))

    def repetition(self, atom: Fragment, after_caret: bool) -> Fragment:
        """`atom` with the repetition that follows it applied (or `atom` alone)."""
        if not self.more() or self.peek() not in "*+?{":
            return atom
        op_at = self.pos
        op = self.peek()
        if op == "{" and not (_is_digit(self.peek(1)) or self.peek(1) == ","):
            raise self.fail("'{' must start a repetition count such as {2} or {1,3}")
        self.pos += 1
        if after_caret:
            raise self.fail(f"repetition operator '{op}' after '^'", op_at)
        if op == "{":
            low = self.count()
            high: Optional[int] = low
            if self.eat(","):
                if _is_digit(self.peek()):
                    high = self.count()
                    if low > high:
                        raise self.fail(f"invalid repetition count {{{low},{high}}}", op_at)
                else:
                    high = None
            if not self.eat("}"):
                if "}" not in self.text[self.pos :]:
                    raise self.fail("unmatched '{'", op_at)
                raise self.fail("invalid repetition count", op_at)
        else:
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[op]
        if self.more() and (
            self.peek() in "*+?" or (self.peek() == "{" and _is_digit(self.peek(1)))
        ):
            raise self.fail(f"repetition operator '{self.peek()}' follows another one")
        return self.repeat(atom, low, high)

    def count(self) -> int:
        start = self.pos
        while self.more() and _is_digit(self.peek()):
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits or int(digits) > DUP_MAX:
            raise self.fail(f"invalid repetition count (0 to {DUP_MAX})", start)
        return int(digits)

    # -- bracket expressions --------------------------------------------
    def bracket(self, start: int) -> Fragment:
        if self.eat("[:<:]]"):
            return [(_ASSERT, _BOW, 0)]
        if self.eat("[:>:]]"):
            return [(_ASSERT, _EOW, 0)]
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
        return self.byte_set(_mask(ranges), invert)

    def bracket_term(self) -> list[tuple[int, int]]:
        term_at = self.pos
        if self.peek() == "-":
            raise self.fail("invalid range in bracket expression ('-' out of place)")
        if self.peek() == "[" and self.peek(1) == ":":
            self.pos += 2
            if not self.more():
                raise self.fail("unmatched '['", term_at)
            name_at = self.pos
            while self.more() and _is_letter(self.peek()):
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


class PosixRegex:
    """A compiled POSIX ERE; `matches` searches a value as regexec(3) does."""

    def __init__(self, pattern: str, *, icase: bool = True) -> None:
        parser = _Parser(pattern, icase)
        program = parser.parse()
        self.source = pattern
        self.icase = icase
        self.top_level_alternation = parser.top_level_alternation
        self.size = len(program)
        # absolute targets; the last instruction accepts
        self._ops: list[int] = []
        self._arg: list[int] = []
        self._arg2: list[int] = []
        for pc, (op, first, second) in enumerate(program):
            self._ops.append(op)
            if op == _SPLIT:
                self._arg.append(pc + first)
                self._arg2.append(pc + second)
            elif op == _JMP:
                self._arg.append(pc + first)
                self._arg2.append(0)
            else:
                self._arg.append(first)
                self._arg2.append(0)
        self._ops.append(_MATCH)
        self._arg.append(0)
        self._arg2.append(0)
        self._match_pc = len(program)
        self._reset_cache()

    def __repr__(self) -> str:
        return f"PosixRegex({self.source!r}, icase={self.icase})"

    def _reset_cache(self) -> None:
        self._state_ids: dict[frozenset[int], int] = {}
        self._states: list[tuple[int, ...]] = []
        self._accepting: list[bool] = []
        self._next: dict[int, int] = {}
        self._cached_pcs = 0
        self._generation = getattr(self, "_generation", 0) + 1

    def _intern(self, kernel: frozenset[int]) -> int:
        found = self._state_ids.get(kernel)
        if found is not None:
            return found
        if len(self._states) >= _MAX_CACHED_STATES or self._cached_pcs > _MAX_CACHED_PCS:
            self._reset_cache()
        state = len(self._states)
        self._state_ids[kernel] = state
        self._states.append(tuple(pc for pc in kernel if self._ops[pc] == _BYTE))
        self._accepting.append(self._match_pc in kernel)
        self._cached_pcs += len(kernel)
        return state

    def _closure(self, pcs: list[int], context: int, steps: list[int]) -> frozenset[int]:
        """The byte-reading and accepting states reachable without reading (engine.c step())."""
        ops, arg, arg2 = self._ops, self._arg, self._arg2
        seen: set[int] = set()
        kernel: list[int] = []
        stack = pcs
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = ops[pc]
            if op == _SPLIT:
                stack.append(arg2[pc])
                stack.append(arg[pc])
            elif op == _JMP:
                stack.append(arg[pc])
            elif op == _ASSERT:
                if _holds(arg[pc], context):
                    stack.append(pc + 1)
            else:
                kernel.append(pc)
        steps[0] += len(seen)
        if steps[0] > MATCH_BUDGET:
            raise RegexBudgetExceeded(self.source, steps[1])
        return frozenset(kernel)

    def matches(self, value: str) -> bool:
        """True when the pattern matches somewhere in `value` (regexec(3) == 0)."""
        data = value.encode("utf-8", "surrogateescape")
        nul = data.find(0)
        if nul >= 0:
            data = data[:nul]
        length = len(data)
        steps = [0, length]
        context = _AT_START | (_AT_END if length == 0 else 0)
        if length and data[0] in _WORD_BYTES:
            context |= _NEXT_WORD
        state = self._intern(self._closure([0], context, steps))
        if self._accepting[state]:
            return True
        arg = self._arg
        for index, byte in enumerate(data):
            following = index + 1
            context = (_PREV_WORD if byte in _WORD_BYTES else 0)
            if following == length:
                context |= _AT_END
            elif data[following] in _WORD_BYTES:
                context |= _NEXT_WORD
            key = (state * 256 + byte) * 16 + context
            target = self._next.get(key)
            if target is None:
                moved = [pc + 1 for pc in self._states[state] if (arg[pc] >> byte) & 1]
                moved.append(0)  # regexec searches: a match may start at every position
                generation = self._generation
                target = self._intern(self._closure(moved, context, steps))
                if generation == self._generation:  # else `key` names a dropped state
                    self._next[key] = target
            if self._accepting[target]:
                return True
            state = target
        return False


def accepted_bytes(regex: PosixRegex) -> Optional[int]:
    """Every byte a value it matches can hold (a 256-bit mask), or None when unbounded.

    None means the pattern does not anchor both ends (regexec(3) searches, so
    the value may then hold anything before or after the match).
    """
    ops, arg, arg2 = regex._ops, regex._arg, regex._arg2
    end = regex._match_pc

    def successors(pc: int, skip: Optional[int] = None) -> list[int]:
        op = ops[pc]
        if op == _SPLIT:
            return [arg[pc], arg2[pc]]
        if op == _JMP:
            return [arg[pc]]
        if op == _ASSERT:
            return [] if arg[pc] == skip else [pc + 1]
        if op == _BYTE:
            return [pc + 1]
        return []

    def reach(starts: list[int], skip: Optional[int] = None, consume: bool = True) -> set[int]:
        seen: set[int] = set()
        stack = list(starts)
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            if ops[pc] == _BYTE and not consume:
                continue
            stack.extend(successors(pc, skip))
        return seen

    forward = reach([0])
    predecessors: dict[int, list[int]] = {}
    for pc in range(len(ops)):
        for target in successors(pc):
            predecessors.setdefault(target, []).append(pc)
    backward: set[int] = set()
    stack = [end]
    while stack:
        pc = stack.pop()
        if pc not in backward:
            backward.add(pc)
            stack.extend(predecessors.get(pc, []))
    useful = [pc for pc in forward & backward if ops[pc] == _BYTE and pc + 1 in backward]
    # a match may start after the value's first byte: a byte is read before any '^'
    before_bol = reach([0], skip=_BOL, consume=False)
    if end in before_bol or any(pc in before_bol for pc in useful):
        return None
    # a match may end before the value's last byte: accepted without passing '$'
    for start in [0, *(pc + 1 for pc in useful)]:
        if end in reach([start], skip=_EOL, consume=False):
            return None
    mask = 0
    for pc in useful:
        mask |= arg[pc]
    return mask


def _holds(assertion: int, context: int) -> bool:
    if assertion == _BOL:
        return bool(context & _AT_START)
    if assertion == _EOL:
        return bool(context & _AT_END)
    if assertion == _BOW:
        return bool(context & _NEXT_WORD) and not context & _PREV_WORD
    return bool(context & _PREV_WORD) and not context & _NEXT_WORD  # _EOW


def translate(pattern: str) -> Translation:
    """Parse a POSIX ERE; raise PosixRegexError if FreeBSD would reject it."""
    compiled = compile_ere(pattern, icase=False)
    return Translation(pattern, compiled.top_level_alternation, compiled.size)


@lru_cache(maxsize=4096)
def compile_ere(pattern: str, *, icase: bool = True) -> PosixRegex:
    """Compile a POSIX ERE (cached); ``.matches(value)`` searches as regexec(3) does."""
    return PosixRegex(pattern, icase=icase)
