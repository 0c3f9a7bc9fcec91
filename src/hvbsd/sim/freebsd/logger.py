"""logger(1): append messages to the guest's syslog (``/var/log/messages``).

``-t tag`` (default: the login name), ``-p facility.level`` (checked as
FreeBSD checks it), ``-i`` (add the pid), ``-s`` (also to stderr), ``-f
file`` (log the file's lines).  Without message arguments each line of
standard input is one message.
"""

from __future__ import annotations

import os
import pwd
import sys
from typing import Optional

from hvbsd.sim.freebsd._common import (
    SYSLOG_FACILITIES,
    SYSLOG_LEVELS,
    GetOpt,
    UsageError,
    append_syslog,
    hostname,
    syslog_line,
)

PROGRAM = "logger"
USAGE = (
    "usage: logger [-46Ais] [-f file] [-h host] [-P port] [-p pri] [-t tag]\n"
    "              [-S addr:port] [message ...]\n"
)
# FreeBSD's logger also takes "mark" and the old level aliases.
FACILITIES = SYSLOG_FACILITIES | {"mark"}
LEVELS = SYSLOG_LEVELS | {"error", "none", "panic", "warn"}


def _check_priority(text: str) -> Optional[str]:
    """None when valid, else FreeBSD's error text."""
    facility, dot, level = text.partition(".")
    if not dot:
        level, facility = facility, "user"
    if facility not in FACILITIES and not facility.isdigit():
        return f"unknown facility name: {facility}"
    if level not in LEVELS and not level.isdigit():
        return f"unknown priority name: {level}"
    return None


def _default_tag() -> str:
    try:
        return os.getlogin()
    except OSError:
        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            return "root"


def main(argv: list[str]) -> int:
    tag: Optional[str] = None
    with_pid = to_stderr = False
    source: Optional[str] = None
    options = GetOpt(argv, "46Af:h:iP:p:S:st:")
    try:
        for letter, value in options:
            if letter == "t":
                tag = value
            elif letter == "p":
                problem = _check_priority(value)
                if problem:
                    sys.stderr.write(f"{PROGRAM}: {problem}\n")
                    return 1
            elif letter == "f":
                source = value
            elif letter == "i":
                with_pid = True
            elif letter == "s":
                to_stderr = True
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    words = options.operands
    if words:
        messages = [" ".join(words)]
    else:
        if source:
            try:
                with open(source, encoding="utf-8", errors="replace") as stream:
                    text = stream.read()
            except OSError as error:
                sys.stderr.write(f"{PROGRAM}: {source}: {error.strerror}\n")
                return 1
        else:
            text = sys.stdin.read()
        messages = text.splitlines()
    ident = tag if tag is not None else _default_tag()
    pid = os.getpid() if with_pid else None
    host = hostname()
    lines = [syslog_line(ident, message, host, pid) for message in messages]
    append_syslog(lines)
    if to_stderr:
        prefix = f"{ident}[{pid}]" if pid is not None else ident
        for message in messages:
            sys.stderr.write(f"{prefix}: {message}\n")
    return 0
