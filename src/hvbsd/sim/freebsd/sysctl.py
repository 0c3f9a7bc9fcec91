"""sysctl(8): read and set the simulated kernel's OIDs with FreeBSD's messages.

Options: ``-a`` (all), ``-n`` (values only), ``-e`` (``name=value``), ``-N``
(names only), ``-q`` (quiet about unknown OIDs), ``-i`` (ignore unknown),
``-d`` (descriptions), ``-b`` (no newline).  ``name=value`` sets writable
OIDs and prints ``name: old -> new``.  The exit status is the number of
arguments that failed, as FreeBSD's sysctl returns.
"""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import GetOpt, UsageError, kernel
from hvbsd.sim.kernel import State, Sysctl

PROGRAM = "sysctl"
USAGE = (
    "usage: sysctl [-bdehiNnoRTtqx] [ -B <bufsize> ] [-f filename] name[=value] ...\n"
    "       sysctl [-bdehNnoRTtqx] [ -B <bufsize> ] -a\n"
)
TYPE_NAMES = {
    "int": "integer",
    "uint": "unsigned integer",
    "long": "long integer",
    "ulong": "unsigned long",
}


class Options:
    def __init__(self) -> None:
        self.values_only = False
        self.equals = False
        self.names_only = False
        self.quiet = False
        self.ignore_unknown = False
        self.descriptions = False
        self.no_newline = False


def _render(options: Options, name: str, oid: Sysctl) -> str:
    value = oid.description if options.descriptions else oid.value
    text = str(value)
    if options.names_only:
        return name
    if options.values_only:
        return text
    separator = "=" if options.equals else ": "
    return f"{name}{separator}{text}"


def _emit(options: Options, text: str) -> None:
    sys.stdout.write(text if options.no_newline else text + "\n")


def _children(state: State, name: str) -> list[str]:
    prefix = name + "."
    return [n for n in state.sysctls if n.startswith(prefix)]


def _parse_value(oid: Sysctl, text: str) -> object:
    if oid.kind == "string":
        return text
    try:
        value = int(text, 0)
    except ValueError:
        return None
    if oid.kind in ("uint", "ulong") and value < 0:
        return None
    return value


def _one(state: State, options: Options, argument: str, changes: list) -> int:
    name, has_value, new_text = argument.partition("=")
    name = name.strip()
    oid = state.sysctls.get(name)
    if oid is None:
        children = _children(state, name)
        if children and not has_value:
            for child in children:
                _emit(options, _render(options, child, state.sysctls[child]))
            return 0
        if children:
            sys.stderr.write(f"{PROGRAM}: oid '{name}' isn't a leaf node\n")
            return 1
        if options.ignore_unknown:
            return 0
        if not options.quiet:
            sys.stderr.write(f"{PROGRAM}: unknown oid '{name}'\n")
        return 1
    if not has_value:
        _emit(options, _render(options, name, oid))
        return 0
    if not oid.writable:
        if oid.tunable:
            sys.stderr.write(f"{PROGRAM}: oid '{name}' is a read only tunable\n")
            sys.stderr.write(f"{PROGRAM}: Tunable values are set in /boot/loader.conf\n")
        else:
            sys.stderr.write(f"{PROGRAM}: oid '{name}' is read only\n")
        return 1
    if oid.kind != "string" and new_text == "":
        sys.stderr.write(f"{PROGRAM}: empty numeric value\n")
        return 1
    value = _parse_value(oid, new_text)
    if value is None:
        sys.stderr.write(f"{PROGRAM}: invalid {TYPE_NAMES.get(oid.kind, oid.kind)} '{new_text}'\n")
        return 1
    old = oid.value
    oid.value = value
    if name == "kern.hostname":
        state.hostname = str(value)
    changes.append((name, old, value))
    return 0


def main(argv: list[str]) -> int:
    options = Options()
    show_all = False
    parsed = GetOpt(argv, "abdehiNnoqRTtWx", double_dash=False)
    try:
        for letter, _value in parsed:
            if letter == "a":
                show_all = True
            elif letter == "n":
                options.values_only = True
            elif letter == "e":
                options.equals = True
            elif letter == "N":
                options.names_only = True
            elif letter == "q":
                options.quiet = True
            elif letter == "i":
                options.ignore_unknown = True
            elif letter == "d":
                options.descriptions = True
            elif letter == "b":
                options.no_newline = True
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    names = parsed.operands
    if options.values_only and options.names_only:
        sys.stderr.write(USAGE)
        return 1
    if not names and not show_all:
        sys.stderr.write(USAGE)
        return 1
    store = kernel()
    if show_all and not names:
        state = store.snapshot()
        for name, oid in state.sysctls.items():
            _emit(options, _render(options, name, oid))
        return 0
    failures = 0
    if not any("=" in n for n in names):
        state = store.snapshot()
        for name in names:
            failures += _one(state, options, name, [])
        return failures
    changes: list = []
    with store.transaction() as state:
        for name in names:
            failures += _one(state, options, name, changes)
    for name, old, new in changes:
        if options.values_only:
            _emit(options, f"{old} -> {new}")
        else:
            _emit(options, f"{name}: {old} -> {new}")
    return failures
