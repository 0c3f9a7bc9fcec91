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

from hvbsd.sim.freebsd._common import append_syslog, hostname, syslog_line

PROGRAM = "logger"
USAGE = (
    "usage: logger [-46Ais] [-f file] [-h host] [-P port] [-p pri] [-t tag]\n"
    "              [-S addr:port] [message ...]\n"
)
FACILITIES = {
    "auth",
    "authpriv",
    "console",
    "cron",
    "daemon",
    "ftp",
    "kern",
    "lpr",
    "mail",
    "mark",
    "news",
    "ntp",
    "security",
    "syslog",
    "user",
    "uucp",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
}
LEVELS = {
    "alert",
    "crit",
    "debug",
    "emerg",
    "err",
    "error",
    "info",
    "none",
    "notice",
    "panic",
    "warn",
    "warning",
}


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
    position = 0
    while position < len(argv) and argv[position].startswith("-") and argv[position] != "-":
        argument = argv[position]
        if argument == "--":
            position += 1
            break
        index = 1
        while index < len(argument):
            letter = argument[index]
            if letter in "tpfhPS":
                value = argument[index + 1 :]
                if not value:
                    position += 1
                    if position >= len(argv):
                        sys.stderr.write(
                            f"{PROGRAM}: option requires an argument -- {letter}\n" + USAGE
                        )
                        return 1
                    value = argv[position]
                if letter == "t":
                    tag = value
                elif letter == "p":
                    problem = _check_priority(value)
                    if problem:
                        sys.stderr.write(f"{PROGRAM}: {problem}\n")
                        return 1
                elif letter == "f":
                    source = value
                break
            if letter == "i":
                with_pid = True
            elif letter == "s":
                to_stderr = True
            elif letter not in "46A":
                sys.stderr.write(f"{PROGRAM}: illegal option -- {letter}\n" + USAGE)
                return 1
            index += 1
        position += 1
    words = argv[position:]
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
