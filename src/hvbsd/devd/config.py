"""The devd.conf(5) model and parser: the one devd parser of hvbsd.

Grammar and lexer follow FreeBSD's ``sbin/devd/parse.y`` and ``token.l``
(14.x):

- top level: ``options { ... };`` and ``attach|detach|nomatch|notify
  PRIORITY { ... };``; an empty file is valid;
- options: ``directory "DIR";``, ``pid-file "FILE";``, ``set NAME "REGEX";``
  (at least one);
- rule bodies: ``match "VAR" "REGEX";``, ``action "CMD";``,
  ``media-type "TYPE";`` and the shorthands ``device-name``, ``class``,
  ``subdevice`` (each ``match "<that name>" ...``); a block with no
  statement is accepted and ignored, as devd never adds it to its lists;
- comments ``# ...``, ``// ...`` (to the end of the line) and ``/* ... */``
  (not nested);
- strings are ``"..."`` with at least one character and no ``"`` inside;
  the only escape is a backslash at the end of a line, which joins the next
  line with its leading white space removed; any other backslash is kept.

Files are read byte for byte, as devd's ``fopen(fn, "r")`` reads them: no
universal newlines.  A CR is not a line end for devd's lexer: outside a
string flex's default rule echoes it and goes on (skipped here too, and
noted in `Config.stray_crs` so that `hvbsd lint` can say so); inside a
string it stays in the value, and a backslash before CRLF is no continuation
(the value keeps the backslash, the CR, the newline and the next line's
indentation).  `#` and `//` comments run to the LF and so include a CR.

Where devd's lexer silently echoes any other character it has no rule for
(an empty ``""``, a stray ``=``), this parser reports an error instead, and a
match regex that regcomp(3) would refuse is an error too (devd ignores the
failure; such a match then never succeeds, or always does when negated).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from hvbsd.devd.event import Event
from hvbsd.devd.expand import expand
from hvbsd.devd.posix_regex import (
    MatchUndecided,
    PosixRegex,
    PosixRegexError,
    RegexTooLarge,
    compile_ere,
)

RULE_KINDS = ("attach", "detach", "nomatch", "notify")
BODY_STATEMENTS = ("match", "action", "media-type", "device-name", "class", "subdevice")
OPTION_STATEMENTS = ("directory", "pid-file", "set")
KEYWORDS = frozenset(("options", *OPTION_STATEMENTS, *RULE_KINDS, *BODY_STATEMENTS))

# media-type names devd 14.x knows (strcasecmp); anything else means "unknown"
MEDIA_TYPES = ("ethernet", "802.11", "atm", "unknown")

_C_SPACE = " \t\n\v\f\r"
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[0-9]+")

MediaLookup = Callable[[str], Optional[str]]


def _cut(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters: error messages quote no more of a value."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(text: str) -> str:
    return '"' + _cut(text).replace("\n", "\\n") + '"'


class DevdError(Exception):
    """A devd configuration could not be loaded."""


class DevdSyntaxError(DevdError):
    """A file devd would refuse (devd: "Cannot parse FILE at line N")."""

    def __init__(self, filename: str, line: int, detail: str) -> None:
        super().__init__(f"Cannot parse {filename} at line {line}: {detail}")
        self.filename = filename
        self.line = line
        self.detail = detail


@dataclass(frozen=True)
class Match:
    """``match "variable" "regex";`` (or a shorthand such as ``device-name``)."""

    variable: str
    regex: str  # as written, without a leading '!'
    negated: bool
    line: int
    expanded: str  # what devd compiles: '^' + regex with set variables expanded + '$'
    pattern: Optional[PosixRegex] = field(compare=False, repr=False)
    unset_variables: tuple[str, ...] = ()
    top_level_alternation: bool = False
    too_large: Optional[str] = None  # why hvbsd cannot evaluate the regex (pattern is None)

    def test(self, value: str) -> bool:
        """Whether devd's regexec would accept `value`; MatchUndecided if hvbsd cannot tell."""
        if self.pattern is None:
            raise MatchUndecided(self.too_large or "regex not evaluated")
        return self.pattern.matches(value) != self.negated


@dataclass(frozen=True)
class MediaType:
    """``media-type "ethernet";``: the interface's media, asked of the kernel."""

    name: str
    line: int

    @property
    def kind(self) -> str:
        lowered = self.name.lower()
        return lowered if lowered in MEDIA_TYPES else "unknown"

    def test(self, media: Optional[str]) -> bool:
        if media is None:  # SIOCGIFMEDIA failed or reported no valid media
            return self.kind == "unknown"
        return media.lower() == self.kind


@dataclass(frozen=True)
class Action:
    command: str
    line: int


@dataclass(frozen=True)
class Rule:
    kind: str
    priority: int
    matches: tuple[Match, ...]
    media_types: tuple[MediaType, ...]
    actions: tuple[Action, ...]
    file: str
    line: int

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(action.command for action in self.actions)

    def applies_to(
        self, lookup: Callable[[str], str], media_type: Optional[MediaLookup] = None
    ) -> bool:
        """All statements of the block hold (devd ANDs them) for the given variables."""
        if not all(match.test(lookup(match.variable)) for match in self.matches):
            return False
        if self.media_types:
            interface = lookup("device-name") or lookup("subsystem")
            media = media_type(interface) if media_type is not None else None
            return all(statement.test(media) for statement in self.media_types)
        return True


@dataclass
class Options:
    directories: list[str] = field(default_factory=list)
    pid_file: Optional[str] = None
    variables: dict[str, str] = field(default_factory=dict)  # `set` NAME -> regex text


@dataclass
class Config:
    """Every rule devd would hold, in load order, and the options."""

    options: Options = field(default_factory=Options)
    rules: list[Rule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    icase: bool = True  # 14.x compiles matches with REG_ICASE; older devd did not
    empty_blocks: list[tuple[str, int, str]] = field(default_factory=list)
    stray_crs: list[tuple[str, int]] = field(default_factory=list)  # CRs devd's lexer skips

    def extend(self, text: str, filename: str = "<string>") -> Config:
        """Parse one more file into this configuration (as devd parses file after file)."""
        _Parser(self, text, filename).parse()
        self.files.append(filename)
        return self

    def rules_for(self, kind: str) -> list[Rule]:
        """devd's list for one event kind: highest priority first, ties in load order."""
        if kind not in RULE_KINDS:
            raise ValueError(f"rule kind {kind!r} is not one of {', '.join(RULE_KINDS)}")
        return sorted((rule for rule in self.rules if rule.kind == kind),
                      key=lambda rule: -rule.priority)

    def variable(self, event: Event, name: str) -> str:
        """A name as devd resolves it: the event's variables, then `set` ones, else ""."""
        if name in event.variables:
            return event.variables[name]
        return self.options.variables.get(name, "")

    def first_match(
        self, event: Event, media_type: Optional[MediaLookup] = None,
        undecided: Optional[list[str]] = None,
    ) -> Optional[Rule]:
        """The one rule devd runs for `event`, or None.

        `media_type` maps an interface name to its media ("ethernet", "802.11",
        "atm") or None when the interface has none; without it every interface
        is treated as having none.  A rule whose regex hvbsd cannot evaluate
        within its budgets (see posix_regex) is passed over, never run, and
        the reason is appended to `undecided`.
        """
        if event.kind not in RULE_KINDS:  # a line devd ignores: find_and_execute's default
            return None

        def lookup(name: str) -> str:
            return self.variable(event, name)

        for rule in self.rules_for(event.kind):
            try:
                applies = rule.applies_to(lookup, media_type)
            except MatchUndecided as exc:
                if undecided is not None:
                    undecided.append(f"{rule.file}:{rule.line}: passed over: {exc}")
                continue
            if applies:
                return rule
        return None


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "number", "string", "{", "}", ";", "eof"
    text: str
    line: int

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of file"
        if self.kind == "string":
            shown = self.text if len(self.text) <= 30 else self.text[:27] + "..."
            return f'string "{shown}"'
        return f"'{self.text}'"


def _tokens(
    text: str, filename: str, stray_crs: Optional[list[tuple[str, int]]] = None
) -> Iterator[_Token]:
    """token.l's rules; a CR outside a string is skipped (flex's default ECHO rule)."""
    line = 1
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char in " \t":
            position += 1
        elif char == "\r":
            if stray_crs is not None and (not stray_crs or stray_crs[-1] != (filename, line)):
                stray_crs.append((filename, line))
            position += 1
        elif char == "\n":
            line += 1
            position += 1
        elif char in ";{}":
            yield _Token(char, char, line)
            position += 1
        elif char == "#" or text.startswith("//", position):
            end = text.find("\n", position)
            position = length if end < 0 else end
        elif text.startswith("/*", position):
            end = text.find("*/", position + 2)
            if end < 0:
                raise DevdSyntaxError(filename, line, "comment '/*' is never closed with '*/'")
            line += text.count("\n", position, end)
            position = end + 2
        elif char == '"':
            end = text.find('"', position + 1)
            if end < 0:
                raise DevdSyntaxError(filename, line, "string is never closed with '\"'")
            if end == position + 1:
                raise DevdSyntaxError(
                    filename, line, 'empty string "" (devd\'s lexer has no empty strings)'
                )
            yield _Token("string", _string_value(text[position : end + 1]), line)
            line += text.count("\n", position, end)
            position = end + 1
        elif "0" <= char <= "9":  # token.l's [0-9]+ (str.isdigit would take any script's digits)
            number = _NUMBER.match(text, position)
            assert number is not None
            yield _Token("number", number.group(), line)
            position = number.end()
        elif char.isascii() and char.isalpha():
            word = _WORD.match(text, position)
            assert word is not None
            yield _Token("word", word.group(), line)
            position = word.end()
        else:
            shown = repr(char)
            raise DevdSyntaxError(filename, line, f"unexpected character {shown}")
    yield _Token("eof", "", line)


def _string_value(quoted: str) -> str:
    """token.l's string rule: backslash-newline plus following white space is dropped."""
    out = []
    last = len(quoted) - 2
    index = 1
    while index <= last:
        if quoted[index] == "\\" and quoted[index + 1] == "\n":
            index += 2
            while index < len(quoted) and quoted[index] in _C_SPACE:
                index += 1
        if index < len(quoted):
            out.append(quoted[index])
        index += 1
    return "".join(out)


class _Parser:
    def __init__(self, config: Config, text: str, filename: str) -> None:
        self.config = config
        self.filename = filename
        self.tokens = _tokens(text, filename, config.stray_crs)
        self.current = next(self.tokens)

    def fail(self, detail: str, line: Optional[int] = None) -> DevdSyntaxError:
        return DevdSyntaxError(self.filename, self.current.line if line is None else line, detail)

    def advance(self) -> _Token:
        token = self.current
        self.current = next(self.tokens)
        return token

    def expect(self, kind: str, context: str) -> _Token:
        if self.current.kind != kind:
            wanted = {"string": "a quoted string", "number": "a priority number"}.get(
                kind, f"'{kind}'"
            )
            raise self.fail(f"expected {wanted} {context}, found {self.current.describe()}")
        return self.advance()

    def parse(self) -> None:
        while self.current.kind != "eof":
            token = self.current
            if token.kind == "word" and token.text == "options":
                self.advance()
                self.options_block()
            elif token.kind == "word" and token.text in RULE_KINDS:
                self.advance()
                self.rule_block(token)
            else:
                raise self.fail(
                    f"unknown statement {token.describe()} "
                    "(expected options, attach, detach, nomatch or notify)"
                )

    def options_block(self) -> None:
        self.expect("{", "after 'options'")
        if self.current.kind == "}":
            raise self.fail("options block is empty (devd needs at least one option in it)")
        options = self.config.options
        while self.current.kind != "}":
            token = self.current
            if token.kind != "word" or token.text not in OPTION_STATEMENTS:
                raise self.fail(
                    f"unknown option {token.describe()} (expected directory, pid-file or set)"
                )
            self.advance()
            if token.text == "set":
                name = self.current
                if name.kind != "word" or name.text in KEYWORDS:
                    raise self.fail(
                        f"set needs a variable name (a letter, then letters, digits, '_' or '-'),"
                        f" found {name.describe()}"
                    )
                self.advance()
                value = self.expect("string", f"after 'set {name.text}'").text
                options.variables[name.text] = value
            else:
                value = self.expect("string", f"after '{token.text}'").text
                if token.text == "directory":
                    options.directories.append(value)
                else:
                    options.pid_file = value
            self.expect(";", f"after the {token.text} statement")
        self.advance()
        self.expect(";", "after the closing '}' of options")

    def rule_block(self, keyword: _Token) -> None:
        kind = keyword.text
        priority = int(self.expect("number", f"after '{kind}'").text)
        self.expect("{", f"after '{kind} {priority}'")
        matches: list[Match] = []
        media_types: list[MediaType] = []
        actions: list[Action] = []
        while self.current.kind != "}":
            token = self.current
            if token.kind != "word" or token.text not in BODY_STATEMENTS:
                raise self.fail(
                    f"unknown statement {token.describe()} in a {kind} block "
                    "(expected match, action, media-type, device-name, class or subdevice)"
                )
            self.advance()
            statement = token.text
            if statement == "match":
                variable = self.expect("string", "after 'match' (the variable name)").text
                regex = self.expect("string", f'after match "{variable}" (the regex)').text
                matches.append(self.compile_match(variable, regex, token.line))
            elif statement in ("device-name", "class", "subdevice"):
                regex = self.expect("string", f"after '{statement}'").text
                matches.append(self.compile_match(statement, regex, token.line))
            elif statement == "media-type":
                name = self.expect("string", "after 'media-type'").text
                media_types.append(MediaType(name, token.line))
            else:
                command = self.expect("string", "after 'action'").text
                actions.append(Action(command, token.line))
            self.expect(";", f"after the {statement} statement")
        self.advance()
        self.expect(";", f"after the closing '}}' of {kind} {priority}")
        if not (matches or media_types or actions):
            self.config.empty_blocks.append((self.filename, keyword.line, kind))
            return
        self.config.rules.append(
            Rule(kind, priority, tuple(matches), tuple(media_types), tuple(actions),
                 self.filename, keyword.line)
        )

    def compile_match(self, variable: str, regex: str, line: int) -> Match:
        negated = regex.startswith("!")
        body = regex[1:] if negated else regex
        known = self.config.options.variables
        unset: list[str] = []

        def lookup(name: str) -> Optional[str]:
            if name not in known:
                unset.append(name)
            return known.get(name)

        expanded = expand(body, lookup, quoting="raw")
        anchored = f"^{expanded}$"
        try:
            pattern = compile_ere(anchored, icase=self.config.icase)
        except RegexTooLarge as exc:
            # regcomp(3) may well accept it; hvbsd only declines to evaluate it
            return Match(variable, body, negated, line, anchored, None, tuple(unset),
                         False, f'match "{variable}" {_short(regex)}: {exc.reason}')
        except PosixRegexError as exc:
            raise self.fail(
                f'bad regular expression in match "{variable}" {_short(regex)} '
                f"(compiled as {_cut(anchored)!r}): {exc.reason}",
                line,
            ) from None
        return Match(variable, body, negated, line, anchored, pattern, tuple(unset),
                     pattern.top_level_alternation)


def read_config_text(path: Union[str, os.PathLike[str]]) -> str:
    """A devd file's text as devd's lexer sees it: its bytes, no newline translation.

    (``Path.read_text`` would turn CRLF and a lone CR into LF, which devd does not.)
    """
    return Path(path).read_bytes().decode("utf-8", errors="surrogateescape")


def parse_text(
    text: str, filename: str = "<string>", *, icase: bool = True,
    variables: Optional[dict[str, str]] = None,
) -> Config:
    """Parse one devd.conf text; `variables` are `set` names defined by earlier files."""
    config = Config(icase=icase)
    config.options.variables.update(variables or {})
    return config.extend(text, filename)


def parse_file(path: Union[str, os.PathLike[str]], *, icase: bool = True) -> Config:
    """Parse one file, byte for byte as devd reads it; errors name it as given."""
    return parse_text(read_config_text(path), os.fspath(path), icase=icase)


def load(
    read: Callable[[str], Optional[str]],
    listdir: Callable[[str], list[str]],
    path: str = "/etc/devd.conf",
    *,
    icase: bool = True,
) -> Config:
    """Load a configuration the way devd starts: `path`, then each `directory`.

    `read(path)` returns a file's text or None if it does not exist (its bytes
    decoded as they are, see `read_config_text`: no universal newlines);
    `listdir(dir)` lists a directory's entry names (a missing directory may
    raise FileNotFoundError or return []).  From each directory only names
    ending in ``.conf`` are read, not recursively.  They are read in sorted
    order; real devd uses readdir(3) order, which is not defined -- rules
    that depend on the order of files (equal priorities) are ambiguous.
    """
    text = read(path)
    if text is None:
        raise DevdError(f"Cannot open config file {path}")
    config = Config(icase=icase)
    config.extend(text, path)
    index = 0
    while index < len(config.options.directories):  # a directory file may add more
        directory = config.options.directories[index]
        index += 1
        try:
            names = listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in sorted(names):
            if not name.endswith(".conf"):
                continue
            file_path = f"{directory}/{name}"
            file_text = read(file_path)
            if file_text is not None:
                config.extend(file_text, file_path)
    return config


def load_tree(
    root: Union[str, os.PathLike[str]], path: str = "/etc/devd.conf", *, icase: bool = True
) -> Config:
    """`load` from a directory holding a guest's file tree (absolute paths live under `root`).

    Errors and `Rule.file` name the guest paths (``/etc/devd/hyperv.conf``).
    """
    base = Path(root)

    def host_path(guest_path: str) -> Path:
        return base / guest_path.lstrip("/")

    def read(guest_path: str) -> Optional[str]:
        candidate = host_path(guest_path)
        if not candidate.is_file():
            return None
        return read_config_text(candidate)

    def listdir(guest_path: str) -> list[str]:
        return os.listdir(host_path(guest_path))

    return load(read, listdir, path, icase=icase)
