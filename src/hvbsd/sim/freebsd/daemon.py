"""daemon(8): run a program detached from the terminal, optionally supervised.

Options as FreeBSD 14: ``-c`` (chdir /), ``-f`` (stdio to /dev/null), ``-p``
child pidfile, ``-P`` supervisor pidfile, ``-r`` / ``-R secs`` restart,
``-S`` / ``-T tag`` / ``-l`` / ``-s`` syslog output, ``-o file``, ``-m
mask``, ``-t title``, ``-u user``.  Pidfiles are locked; a locked one means
``daemon: process already running, pid: N`` and exit 3.  With any of -p -P
-r -R -S -o the program runs as a child of a supervisor that forwards
SIGTERM and removes the pidfiles when it exits.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
from typing import Any, Optional

from hvbsd.sim.freebsd._common import (
    SYSLOG_FACILITIES,
    SYSLOG_LEVELS,
    GetOpt,
    UsageError,
    detach,
    exec_titled,
    stdio_to_devnull,
)
from hvbsd.sim.freebsd._supervisor import TERMINATING_SIGNALS, spawn_child

PROGRAM = "daemon"
USAGE = (
    "usage: daemon [-cfHrS] [-p child_pidfile] [-P supervisor_pidfile]\n"
    "              [-u user] [-o output_file] [-t title]\n"
    "              [-m output_mask] [-R restart_delay_secs]\n"
    "              [-s syslog_priority] [-T syslog_tag]\n"
    "              [-l syslog_facility] command arguments ...\n"
)


def _usage() -> int:
    sys.stderr.write(USAGE)
    return 1


def open_pidfile(path: str) -> int:
    """pidfile_open(3): create and lock; exit 3 if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        sys.stderr.write(f"{PROGRAM}: pidfile ``{path}'': {error.strerror}\n")
        raise SystemExit(2) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        content = os.read(fd, 64).decode(errors="replace").strip()
        os.close(fd)
        sys.stderr.write(f"{PROGRAM}: process already running, pid: {content or 0}\n")
        raise SystemExit(3) from None
    os.set_inheritable(fd, True)
    return fd


def main(argv: list[str]) -> int:
    options: dict[str, Any] = {
        "c": False,
        "f": False,
        "r": False,
        "S": False,
        "H": False,
        "p": None,
        "P": None,
        "o": None,
        "t": None,
        "u": None,
        "m": "3",
        "R": None,
        "s": None,
        "T": None,
        "l": None,
    }
    parsed = GetOpt(argv, "cfHl:m:o:P:p:R:rSs:T:t:u:")
    try:
        for letter, value in parsed:
            options[letter] = value if letter in "pPotumRsTl" else True
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    command = parsed.operands
    if not command:
        return _usage()
    if options["s"] is not None and options["s"] not in SYSLOG_LEVELS:
        sys.stderr.write(f"{PROGRAM}: unrecognized syslog priority\n")
        return 4
    if options["l"] is not None and options["l"] not in SYSLOG_FACILITIES:
        sys.stderr.write(f"{PROGRAM}: unrecognized syslog facility\n")
        return 5
    if options["m"] not in ("1", "2", "3"):
        sys.stderr.write(f"{PROGRAM}: unrecognized listening mask\n")
        return 6
    restart_delay = 1
    if options["R"] is not None:
        if not options["R"].isdigit() or int(options["R"]) < 1:
            sys.stderr.write(f"{PROGRAM}: invalid restart delay\n")
            return 1
        restart_delay = int(options["R"])
        options["r"] = True
    syslog = bool(options["S"] or options["s"] or options["T"] or options["l"])
    if options["o"] is not None:
        try:
            os.close(os.open(options["o"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as error:
            sys.stderr.write(f"{PROGRAM}: could not open output file: {error.strerror}\n")
            return 7
    supervise = bool(options["p"] or options["P"] or options["r"] or syslog or options["o"])
    pidfile_fd: Optional[int] = open_pidfile(options["p"]) if options["p"] else None
    ppidfile_fd: Optional[int] = open_pidfile(options["P"]) if options["P"] else None

    # daemon(3): the caller returns, the rest runs in a new session. On FreeBSD the
    # supervisor has its title and pidfile microseconds later; here a Python re-exec
    # takes far longer, so the caller waits on a pipe until the supervisor is ready.
    ready_write = detach()
    if options["c"]:
        os.chdir("/")
    if options["f"]:
        stdio_to_devnull()
    if not supervise:
        os.close(ready_write)
        try:
            os.execvp(command[0], command)
        except OSError as error:
            os.write(2, f"{PROGRAM}: {command[0]}: {error.strerror}\n".encode())
            os._exit(1)
    # The supervisor writes its own pidfile once it carries daemon(8)'s title.
    config: dict[str, Any] = {
        "argv": command,
        "pidfile": options["p"],
        "ppidfile": options["P"],
        "pidfile_fd": pidfile_fd,
        "ppidfile_fd": ppidfile_fd,
        "ready_fd": ready_write,
        "restart": bool(options["r"]),
        "restart_delay": restart_delay,
        "syslog": syslog,
        "tag": options["T"] or "daemon",
        "output_file": options["o"],
        "output_mask": int(options["m"]),
    }
    # Signals wait until the supervisor's handlers are in place.
    signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATING_SIGNALS)
    child_pid, output_fd = spawn_child(config)
    if output_fd is not None:
        os.set_inheritable(output_fd, True)
    config["child_pid"] = child_pid
    config["output_fd"] = output_fd
    os.set_inheritable(ready_write, True)
    title = f"daemon: {options['t'] or command[0]}[{child_pid}] (daemon)"
    exec_titled(title, "hvbsd.sim.freebsd._supervisor", json.dumps(config))
    return 1  # not reached
