"""cpuset(1): run a command on a set of CPUs, as FreeBSD's usr.bin/cpuset/cpuset.c.

rc.subr runs ``cpuset -l LIST command args`` for ``${name}_cpuset``; that is
the form simulated (``-l`` and ``-s`` before a command, ``-g`` to show a
process's mask).  The CPUs are the simulated kernel's (``hw.ncpu``); the
mask is applied to the host's CPUs of the same numbers where they exist.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError, kernel, strerror

PROGRAM = "cpuset"
USAGE = (
    "usage: cpuset [-l cpu-list] [-n policy:domain-list] [-s setid] cmd ...\n"
    "       cpuset [-l cpu-list] [-n policy:domain-list] [-s setid] -p pid\n"
    "       cpuset [-c] [-l cpu-list] [-n policy:domain-list] -C -p pid\n"
    "       cpuset [-c] [-l cpu-list] [-n policy:domain-list]\n"
    "              [-j jailid | -p pid | -t tid | -s setid | -x irq]\n"
    "       cpuset -g [-cir]\n"
    "              [-d domain | -j jailid | -p pid | -t tid | -s setid | -x irq]\n"
)
CPU_SETSIZE = 1024


def parse_list(text: str, size: int = CPU_SETSIZE) -> Optional[set[int]]:
    """parselist(): "0-2,5"; None when malformed or out of range."""
    chosen: set[int] = set()
    state, last, current, index = "none", 0, 0, 0
    while index < len(text):
        char = text[index]
        if char.isdigit():
            end = index
            while end < len(text) and text[end].isdigit():
                end += 1
            current = int(text[index:end])
            if current >= size:
                return None
            index = end
            if state == "none":
                last, state = current, "num"
            elif state == "dash":
                chosen.update(range(last, current + 1))
                state = "none"
            else:
                return None
            continue
        if char == "," and state != "dash":
            if state == "num":
                chosen.add(current)
            state = "none"
        elif char == "-" and state == "num":
            state = "dash"
        else:
            return None
        index += 1
    if state == "dash":
        return None
    if state == "num":
        chosen.add(current)
    return chosen


def _ncpu() -> int:
    try:
        return int(kernel().snapshot().sysctl_value("hw.ncpu"))
    except Exception:
        return os.cpu_count() or 1


def main(argv: list[str]) -> int:
    flags: dict[str, str] = {}
    options = GetOpt(argv, "Ccd:gij:l:n:p:rs:t:x:")
    try:
        for letter, value in options:
            flags[letter] = value
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    rest = options.operands
    ncpu = _ncpu()
    mask: Optional[set[int]] = None
    if "l" in flags:
        mask = set(range(ncpu)) if flags["l"].lower() == "all" else parse_list(flags["l"])
        if mask is None:
            sys.stderr.write(f"{PROGRAM}: Malformed cpu-list {flags['l']}\n")
            return 1
    if "j" in flags:
        sys.stderr.write(f'{PROGRAM}: jail "{flags["j"]}" not found\n')
        return 1
    if "g" in flags:
        if rest or flags.keys() & {"C", "l", "n"}:
            sys.stderr.write(USAGE)
            return 1
        pid = int(flags.get("p") or -1) if (flags.get("p") or "").isdigit() else -1
        which = f"pid {pid if pid > 0 else -1}"
        sys.stdout.write(f"{which} mask: {', '.join(str(c) for c in range(ncpu))}\n")
        sys.stdout.write(f"{which} domain policy: first-touch mask: 0\n")
        return 0
    if flags.keys() & {"d", "i", "r"}:
        sys.stderr.write(USAGE)
        return 1
    if rest:
        if flags.keys() & {"C", "p", "t", "x", "j"}:
            sys.stderr.write(USAGE)
            return 1
        if mask is not None:
            if not mask or max(mask) >= ncpu:
                # cpuset_setaffinity(2) of CPUs the kernel lacks
                sys.stderr.write(f"{PROGRAM}: setaffinity: {strerror(errno.EDEADLK)}\n")
                return 1
            host = {cpu for cpu in mask if cpu < (os.cpu_count() or 1)}
            if host:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, host)
        try:
            os.execvp(rest[0], rest)
        except OSError as error:
            sys.stderr.write(f"{PROGRAM}: {rest[0]}: {strerror(error.errno or 0)}\n")
            return 127 if error.errno == errno.ENOENT else 126
    if not (flags.keys() & {"l", "n"}) and ("c" in flags or not flags.keys() & {"C", "s"}):
        sys.stderr.write(USAGE)
        return 1
    if "p" in flags:
        try:
            os.kill(int(flags["p"]), 0)
        except (ValueError, ProcessLookupError):
            sys.stderr.write(f"{PROGRAM}: setaffinity: {strerror(errno.ESRCH)}\n")
            return 1
        except PermissionError:
            pass
    return 0
