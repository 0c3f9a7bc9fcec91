"""protect(1): exempt processes from the out-of-swap killer (usr.bin/protect/protect.c).

rc.subr runs ``protect -p PID`` (``${name}_oomprotect=YES``) and ``protect
-d -i -p PID`` (``ALL``).  The simulated kernel has no swap to run out of:
procctl(PROC_SPROTECT) succeeds for a process that exists and fails with
ESRCH for one that does not, as FreeBSD's does; ``protect command`` runs the
command.  getopt(3) complains of an unknown letter and protect goes on, as
protect.c's switch has no default.
"""

from __future__ import annotations

import errno
import os
import sys

from hvbsd.sim.freebsd._common import GetOpt, strerror

PROGRAM = "protect"
USAGE = "usage: protect [-i] command\n       protect [-cdi] -g pgrp | -p pid\n"


def _usage() -> int:
    sys.stderr.write(USAGE)
    return 1


def _parse_id(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        sys.stderr.write(f"{PROGRAM}: invalid process id\n")
        return None


def _exists(kind: str, ident: int) -> bool:
    if kind == "p":
        try:
            os.kill(ident, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return ident > 0
    try:
        os.killpg(ident, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return ident > 0


def main(argv: list[str]) -> int:
    descend = False
    kind, ident = "p", os.getpid()
    id_set = False
    options = GetOpt(argv, "cdig:p:", warn_as=PROGRAM)
    for letter, value in options:
        if letter in "gp":
            if id_set:
                sys.stderr.write(f"{PROGRAM}: only one -g or -p flag is permitted\n")
                return _usage()
            parsed = _parse_id(value)
            if parsed is None:
                return _usage()
            kind, ident, id_set = letter, parsed, True
        elif letter == "d":
            descend = True
    rest = options.operands
    if (id_set and rest) or (not id_set and (not rest or descend)):
        return _usage()
    if id_set and not _exists(kind, ident):
        sys.stderr.write(f"{PROGRAM}: procctl: {strerror(errno.ESRCH)}\n")
        return 1
    if rest:
        try:
            os.execvp(rest[0], rest)
        except OSError as error:
            sys.stderr.write(f"{PROGRAM}: {rest[0]}: {strerror(error.errno or 0)}\n")
            return 127 if error.errno == errno.ENOENT else 126
    return 0
