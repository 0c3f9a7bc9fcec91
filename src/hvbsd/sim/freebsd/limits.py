"""limits(1): show or set resource limits, or run a command under them (usr.bin/limits/limits.c).

rc.subr's run_rc_command starts every daemon as ``limits -C $login_class
$limits command args`` (``_doit="$_cd limits -C $_login_class $_limits
$_doit"``), so this is the form that matters: options end at the command,
leading ``name=value`` words are put in the environment, the limits given
are applied and the command is exec'd.  Without a command the limits are
printed as limits.c prints them (``-e``: as sh(1) ``ulimit`` commands).

The resources are limits.c's (RCS_STRING "tfdscmlunbvpwkoy"); those Linux
has (cputime, filesize, datasize, stacksize, coredumpsize, memoryuse,
memorylocked, maxprocesses, openfiles, vmemoryuse) are read and set with
getrlimit/setrlimit, the others are shown as infinity and setting them is
accepted.  A login class is looked up in /etc/login.conf (or FreeBSD's
stock classes when the guest has none); its capabilities are not applied.
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import sys
from dataclasses import dataclass
from typing import Optional

PROGRAM = "limits"
USAGE = (
    "usage: limits [-C class|-P pid|-U user] [-eaSHBE] "
    "[-bcdfklmnostuvpwy [val]] [[name=val ...] cmd]\n"
)
INFINITY = resource.RLIM_INFINITY
SOFT, HARD = 1, 2
STOCK_CLASSES = ("default", "standard", "xuser", "staff", "daemon", "news", "dialer", "root")


@dataclass(frozen=True)
class Resource:
    letter: str
    cap: str
    shown: str  # the default display's name ("  cputime%-4s          %8s")
    suffix: str
    divisor: int
    kind: str  # "time", "size" or "number" (resource_num)
    linux: Optional[int]
    sh: Optional[tuple[str, int]]  # ulimit letter and divisor for -e

    def label(self, which: str) -> str:
        # every label of limits.c's table is 23 columns wide before the value
        return f"  {self.shown}{which:<4}".ljust(23)


def _linux(name: Optional[str]) -> Optional[int]:
    value = getattr(resource, name, None) if name else None
    return int(value) if value is not None else None


_TABLE = (
    # letter, cap, shown, suffix, divisor, kind, Linux RLIMIT_, sh ulimit letter, divisor
    ("t", "cputime", "cputime", " secs", 1, "time", "RLIMIT_CPU", "t", 1),
    ("f", "filesize", "filesize", " kB", 1024, "size", "RLIMIT_FSIZE", "f", 512),
    ("d", "datasize", "datasize", " kB", 1024, "size", "RLIMIT_DATA", "d", 1024),
    ("s", "stacksize", "stacksize", " kB", 1024, "size", "RLIMIT_STACK", "s", 1024),
    ("c", "coredumpsize", "coredumpsize", " kB", 1024, "size", "RLIMIT_CORE", "c", 512),
    ("m", "memoryuse", "memoryuse", " kB", 1024, "size", "RLIMIT_RSS", "m", 1024),
    ("l", "memorylocked", "memorylocked", " kB", 1024, "size", "RLIMIT_MEMLOCK", "l", 1024),
    ("u", "maxproc", "maxprocesses", "", 1, "number", "RLIMIT_NPROC", "u", 1),
    ("n", "openfiles", "openfiles", "", 1, "number", "RLIMIT_NOFILE", "n", 1),
    ("b", "sbsize", "sbsize", " bytes", 1, "size", None, "b", 1),
    ("v", "vmemoryuse", "vmemoryuse", " kB", 1024, "size", "RLIMIT_AS", "v", 1024),
    ("p", "pseudoterminals", "pseudo-terminals", "", 1, "number", None, "p", 1),
    ("w", "swapuse", "swapuse", " kB", 1024, "size", None, "w", 1024),
    ("k", "kqueues", "kqueues", "", 1, "number", None, None, 1),
    ("o", "umtxp", "umtxp", "", 1, "number", None, None, 1),
    ("y", "pipebuf", "pipebuf", " kB", 1024, "size", None, None, 1),
)
RESOURCES = tuple(
    Resource(a, b, c, d, e, f, _linux(g), (h, i) if h else None)
    for a, b, c, d, e, f, g, h, i in _TABLE
)
BY_LETTER = {r.letter: r for r in RESOURCES}
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
SIZE_UNITS = {"b": 512, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class Usage(Exception):
    pass


def resource_num(item: Resource, text: Optional[str]) -> int:
    """resource_num(): a value with its units; inf/infinity/unlimit(ed) is RLIM_INFINITY."""
    if text is None or text.lower() in ("inf", "infinity", "unlimit", "unlimited"):
        return INFINITY
    rest, total = text, 0
    if item.kind == "number":
        match = re.match(r"[+-]?(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", rest)
        if match:
            total = int(match.group(0), 0)
            rest = rest[match.end() :]
    else:
        units = TIME_UNITS if item.kind == "time" else SIZE_UNITS
        while rest:
            match = re.match(r"[+-]?(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", rest)
            if not match:
                break
            number = int(match.group(0), 0)
            rest = rest[match.end() :]
            unit = rest[:1].lower()
            if unit:
                rest = rest[1:]
            total += number * units.get(unit, 1)
    if rest:
        sys.stderr.write(f"{PROGRAM}: invalid value -{item.letter} `{text}'\n")
        raise Usage
    return total


def _classes() -> list[str]:
    try:
        with open("/etc/login.conf", encoding="utf-8", errors="replace") as stream:
            text = stream.read(1024 * 1024)
    except OSError:
        return list(STOCK_CLASSES)
    names = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            names.extend(line.split(":", 1)[0].split("|"))
    return names


def _current(item: Resource, pid: Optional[int]) -> tuple[int, int]:
    if item.linux is None:
        return INFINITY, INFINITY
    if pid is not None:
        return resource.prlimit(pid, item.linux)
    return resource.getrlimit(item.linux)


def _number(value: int, divisor: int, infinity: str) -> str:
    if value == INFINITY:
        return infinity
    return str((value + divisor // 2) // divisor)


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    except Usage:
        sys.stderr.write(USAGE)
        return 1


def _main(argv: list[str]) -> int:
    doall = doeval = clean = False
    login_class: Optional[str] = None
    user: Optional[pwd.struct_passwd] = None
    pid: Optional[int] = None
    kind = 0
    wanted: dict[str, int] = {}  # letter -> SOFT/HARD/BOTH (or 4: display only)
    values: dict[str, int] = {}
    setting = False
    position = 0
    while position < len(argv):
        word = argv[position]
        if word == "--":
            position += 1
            break
        if not word.startswith("-") or word == "-":
            break
        position += 1
        index = 1
        while index < len(word):
            letter = word[index]
            index += 1
            if letter in "aeEBSH":
                doall |= letter == "a"
                doeval |= letter == "e"
                clean |= letter == "E"
                kind = {"B": SOFT | HARD, "S": SOFT, "H": HARD}.get(letter, kind)
                continue
            if letter in "CUP" or letter in BY_LETTER:
                argument: Optional[str] = word[index:] or None
                index = len(word)
                if argument is None and position < len(argv):
                    argument = argv[position]
                    position += 1
                    if letter in BY_LETTER and argument.startswith("-"):
                        # "'arg' is actually a switch": back one
                        position -= 1
                        argument = None
                if letter == "C":
                    if argument is None:
                        raise Usage
                    login_class = argument
                elif letter == "U":
                    if argument is None:
                        raise Usage
                    try:
                        user = pwd.getpwnam(argument)
                    except KeyError:
                        try:
                            user = pwd.getpwuid(int(argument)) if argument[:1].isdigit() else None
                        except (KeyError, ValueError):
                            user = None
                        if user is None:
                            sys.stderr.write(f"{PROGRAM}: invalid user `{argument}'\n")
                            raise Usage from None
                elif letter == "P":
                    if argument is None or not argument.isdigit():
                        sys.stderr.write(f"{PROGRAM}: invalid pid `{argument or ''}'\n")
                        raise Usage
                    pid = int(argument)
                else:
                    item = BY_LETTER[letter]
                    setting = setting or argument is not None
                    if kind == 0:
                        kind = SOFT | HARD
                    wanted[letter] = kind if argument is not None else 4
                    values[letter] = resource_num(item, argument)
                continue
            # limits.c's optstring starts with ':', so getopt(3) prints nothing
            # (getopt.c: `if (opterr && *ostr != ':')`): only the usage follows
            raise Usage
    rest = argv[position:]
    class_name = None
    if user is not None:
        class_name = "default"
    elif login_class:
        class_name = login_class if login_class in _classes() else "default"
        if class_name != login_class:
            sys.stderr.write(f"login class '{login_class}' non-existent, using {class_name}\n")
    try:
        limits = {r.letter: list(_current(r, pid)) for r in RESOURCES}
    except (ProcessLookupError, PermissionError) as error:
        sys.stderr.write(f"{PROGRAM}: prlimit: {os.strerror(error.errno or 0)}\n")
        return 1
    if setting:
        for letter, which in wanted.items():
            if which & HARD and which != 4:
                limits[letter][1] = values[letter]
            if which & SOFT and which != 4:
                limits[letter][0] = values[letter]
    if rest:
        if doeval:
            sys.stderr.write(f"{PROGRAM}: -e cannot be used with `cmd' option\n")
            raise Usage
        if clean:
            os.environ.clear()
        while rest and "=" in rest[0]:
            name, _, value = rest.pop(0).partition("=")
            os.environ[name] = value
        for item in RESOURCES:
            if item.linux is None or not (doall or not wanted or item.letter in wanted):
                continue
            soft, hard = limits[item.letter]
            if (soft, hard) == tuple(_current(item, None)):
                continue
            try:
                resource.setrlimit(item.linux, (soft, hard))
            except (OSError, ValueError) as error:
                reason = os.strerror(getattr(error, "errno", None) or 1)
                sys.stderr.write(f"{PROGRAM}: setrlimit {item.cap}: {reason}\n")
                return 1
        if not rest:
            raise Usage
        try:
            os.execvp(rest[0], rest)
        except OSError as error:
            sys.stderr.write(f"{PROGRAM}: {rest[0]}: {os.strerror(error.errno or 0)}\n")
            return 1
    shown_kind = kind or SOFT
    if doeval:
        return _show_sh(limits, wanted, doall, shown_kind)
    header = f" for class {class_name}" if class_name else " (current)"
    sys.stdout.write(f"Resource limits{header}:\n")
    for item in RESOURCES:
        if not (doall or not wanted or item.letter in wanted):
            continue
        soft, hard = limits[item.letter]
        lines = []
        if soft == hard:
            lines.append(("", hard))
        else:
            if shown_kind & HARD:
                lines.append(("-max", hard))
            if shown_kind & SOFT:
                lines.append(("-cur", soft))
        for which, value in lines:
            label = item.label(which)
            number = _number(value, item.divisor, "infinity")
            sys.stdout.write(f"{label}{number:>8}{item.suffix}\n")
    return 0


def _show_sh(limits: dict[str, list[int]], wanted: dict[str, int], doall: bool, kind: int) -> int:
    """-e for sh(1): one ulimit command a limit."""
    for item in RESOURCES:
        if item.sh is None or not (doall or not wanted or item.letter in wanted):
            continue
        letter, divisor = item.sh
        soft, hard = limits[item.letter]
        if soft == hard:
            sys.stdout.write(f"ulimit -{letter} {_number(hard, divisor, 'unlimited')};\n")
            continue
        if kind & HARD:
            sys.stdout.write(f"ulimit -H -{letter} {_number(hard, divisor, 'unlimited')};\n")
        if kind & SOFT:
            sys.stdout.write(f"ulimit -S -{letter} {_number(soft, divisor, 'unlimited')};\n")
    return 0
