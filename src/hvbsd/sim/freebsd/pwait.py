"""pwait(1): wait for processes to terminate, as FreeBSD's bin/pwait/pwait.c.

``-o`` returns when the first one exits, ``-t`` gives up after a timeout
(exit 124), ``-v`` reports each exit.  Linux tells a process that is not the
parent nothing of another's exit status, so ``-v`` says "terminated."
(pwait.c's words when the status is neither an exit nor a signal).
"""

from __future__ import annotations

import os
import re
import select
import sys
import time
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError, strerror

PROGRAM = "pwait"
USAGE = "usage: pwait [-t timeout] [-ov] pid ...\n"
EX_OK, EX_USAGE, EX_DATAERR = 0, 64, 65
POLL_SECONDS = 0.05


def _timeout(text: str) -> Optional[float]:
    """strtod(3) and the unit letter after it (s, m, h), bounded as pwait.c bounds it."""
    match = re.match(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text)
    if match is None or float(match.group(0)) < 0 or float(match.group(0)) == float("inf"):
        sys.stderr.write(f"{PROGRAM}: timeout value\n")
        return None
    seconds = float(match.group(0))
    unit = text[match.end() : match.end() + 1]
    if unit not in ("", "s", "m", "h"):
        sys.stderr.write(f"{PROGRAM}: timeout unit\n")
        return None
    seconds *= {"m": 60, "h": 3600}.get(unit, 1)
    if seconds > 100000000:
        sys.stderr.write(f"{PROGRAM}: timeout value\n")
        return None
    return seconds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def main(argv: list[str]) -> int:
    once = verbose = False
    limit: Optional[float] = None
    options = GetOpt(argv, "ot:v")
    try:
        for letter, value in options:
            if letter == "o":
                once = True
            elif letter == "v":
                verbose = True
            else:
                limit = _timeout(value)
                if limit is None:
                    return EX_DATAERR
    except UsageError as error:
        return error.report(PROGRAM, USAGE, EX_USAGE)
    if not options.operands:
        sys.stderr.write(USAGE)
        return EX_USAGE
    waiting: list[int] = []
    for word in options.operands:
        text = word[6:] if word.startswith("/proc/") else word
        if not text.lstrip("+").isdigit() and not (text.startswith("-") and text[1:].isdigit()):
            sys.stderr.write(f"{PROGRAM}: {text}: bad process id\n")
            continue
        pid = int(text)
        if pid < 0:
            sys.stderr.write(f"{PROGRAM}: {text}: bad process id\n")
            continue
        if pid == os.getpid():
            sys.stderr.write(f"{PROGRAM}: {text}: skipping my own pid\n")
            continue
        if pid in waiting:
            continue
        if pid == 0 or not _alive(pid):
            sys.stderr.write(f"{PROGRAM}: {pid}: {strerror(3)}\n")
            if once:
                return EX_OK
            continue
        waiting.append(pid)
    deadline = None if limit is None else time.monotonic() + limit
    while waiting:
        for pid in list(waiting):
            if not _alive(pid):
                if verbose:
                    sys.stdout.write(f"{pid}: terminated.\n")
                    sys.stdout.flush()
                if once:
                    return EX_OK
                waiting.remove(pid)
        if not waiting:
            break
        if deadline is not None and time.monotonic() >= deadline:
            if verbose:
                sys.stdout.write("timeout\n")
            return 124
        select.select([], [], [], POLL_SECONDS)
    return EX_OK
