"""pgrep(1)/pkill(1) of FreeBSD over the guest's /proc (its own PID namespace)."""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError

USAGE = {
    "pgrep": "usage: pgrep [-LSfilnoqvx] [-d delim] [-F pidfile] [-G gid] [-M core] [-N system]\n"
    "             [-P ppid] [-U uid] [-c class] [-g pgrp] [-j jail]\n"
    "             [-s sid] [-t tty] [-u euid] pattern ...\n",
    "pkill": "usage: pkill [-signal] [-ILfilnovx] [-F pidfile] [-G gid] [-M core] [-N system]\n"
    "             [-P ppid] [-U uid] [-c class] [-g pgrp] [-j jail]\n"
    "             [-s sid] [-t tty] [-u euid] pattern ...\n",
}
STATUS_MATCH, STATUS_NO_MATCH, STATUS_BADUSAGE, STATUS_ERROR = 0, 1, 2, 3


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:
        return None


def processes() -> list[tuple[int, str, str]]:
    """(pid, name, arguments) of every process, as ps(1) shows them: pgrep.c
    matches the kernel's p_comm and, with -f, the argument vector; a simulated
    command or the guest's sh under its FreeBSD name, not the Linux one."""
    from hvbsd.sim.freebsd.ps import processes as listed

    return sorted((p.pid, p.comm, " ".join(p.argv)) for p in listed())


def _signal_number(text: str) -> Optional[int]:
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    value = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    return int(value) if value is not None else None


def run(program: str, argv: list[str]) -> int:
    exact = full = long_output = invert = quiet = newest = oldest = False
    delimiter = "\n"
    pidfile: Optional[str] = None
    signal_number = int(signal.SIGTERM)
    position = 0
    if program == "pkill" and argv and argv[0].startswith("-") and len(argv[0]) > 1:
        candidate = _signal_number(argv[0][1:])
        if candidate is not None and argv[0][1:] not in ("f", "x", "l", "n", "o", "v", "F"):
            signal_number = candidate
            position = 1
    flags = "ILSafilnovx" + ("q" if program == "pgrep" else "")
    options = GetOpt(argv[position:], flags + "c:d:F:G:g:j:M:N:P:s:t:U:u:")
    try:
        for letter, value in options:
            if letter == "d" and program == "pgrep":
                delimiter = value
            elif letter == "F":
                pidfile = value
            elif letter == "x":
                exact = True
            elif letter == "f":
                full = True
            elif letter == "l":
                long_output = True
            elif letter == "v":
                invert = True
            elif letter == "q":
                quiet = True
            elif letter == "n":
                newest = True
            elif letter == "o":
                oldest = True
    except UsageError as error:
        return error.report(program, USAGE[program], STATUS_BADUSAGE, name_missing=False)
    patterns = options.operands
    if not patterns and pidfile is None:
        sys.stderr.write(USAGE[program])
        return STATUS_BADUSAGE
    if newest and oldest:
        sys.stderr.write(f"{program}: -n and -o are mutually exclusive\n" + USAGE[program])
        return STATUS_BADUSAGE
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(f"^(?:{pattern})$" if exact else pattern))
        except re.error as error:
            sys.stderr.write(
                f"{program}: Cannot compile regular expression `{pattern}' ({error})\n"
            )
            return STATUS_ERROR
    only_pid: Optional[int] = None
    if pidfile is not None:
        content = _read(pidfile)
        if content is None:
            sys.stderr.write(
                f"{program}: Cannot open pidfile `{pidfile}': No such file or directory\n"
            )
            return STATUS_ERROR
        text = content.decode(errors="replace").strip().split("\n")[0].strip()
        if not text.isdigit():
            sys.stderr.write(f"{program}: Invalid pidfile `{pidfile}'\n")
            return STATUS_ERROR
        only_pid = int(text)
    own = os.getpid()
    matched = []
    for pid, name, args in processes():
        if pid == own:
            continue
        if only_pid is not None and pid != only_pid:
            continue
        subject = args if full and args else name
        hit = not compiled or any(p.search(subject) for p in compiled)
        if hit != invert:
            matched.append((pid, name, args))
    if newest and matched:
        matched = [matched[-1]]
    if oldest and matched:
        matched = [matched[0]]
    if not matched:
        return STATUS_NO_MATCH
    if program == "pgrep":
        if not quiet:
            shown = []
            for pid, name, args in matched:
                if long_output:
                    shown.append(f"{pid} {args if full else name}")
                else:
                    shown.append(str(pid))
            sys.stdout.write(delimiter.join(shown) + "\n")
        return STATUS_MATCH
    status = STATUS_MATCH
    for pid, name, _args in matched:
        try:
            os.kill(pid, signal_number)
        except ProcessLookupError:
            continue
        except PermissionError:
            sys.stderr.write(f"{program}: signalling pid {pid}: Operation not permitted\n")
            status = STATUS_ERROR
            continue
        if long_output:
            sys.stdout.write(f"{pid} {name}\n")
    return status
