"""rtsol(8): send IPv6 router solicitations once, as FreeBSD's usr.sbin/rtsold (rtsol mode).

rtsold.c's main with rtsol's options ("adDFO:R:u"): each interface named
(or, with ``-a``, every up non-loopback one accepting router advertisements,
autoifprobe()) is brought up (interface_up()), gets ACCEPT_RTADV with ``-F``,
and is sent a solicitation.  The simulated network has no IPv6 routers, so
rtsol returns at once instead of waiting out its three solicitations; each
solicitation is recorded, one interface name a line, in ``solicitations``
next to the guest's kernel state, for tests and the simulated host to read.
"""

from __future__ import annotations

import os
import sys

from hvbsd.sim.freebsd._common import GetOpt, UsageError, kernel
from hvbsd.sim.freebsd.ifconfig import _ensure_link_local
from hvbsd.sim.kernel import KernelError

PROGRAM = "rtsol"
USAGE = (
    "usage: rtsol [-dDF] [-O script-name] [-p pidfile] [-R script-name] interface ...\n"
    "usage: rtsol [-dDF] [-O script-name] [-p pidfile] [-R script-name] -a\n"
)
RECORD = "solicitations"


def _record(names: list[str]) -> None:
    path = kernel().directory / RECORD
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(handle, "".join(f"{name}\n" for name in names).encode())
    finally:
        os.close(handle)


def solicited() -> list[str]:
    """The interfaces solicited so far, oldest first."""
    try:
        return (kernel().directory / RECORD).read_text().split()
    except FileNotFoundError:
        return []


def main(argv: list[str]) -> int:
    flags: dict[str, str] = {}
    options = GetOpt(argv, "adDFO:R:u")
    try:
        for letter, value in options:
            flags[letter] = value
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    names = options.operands
    if ("a" not in flags and not names) or ("a" in flags and names):
        sys.stderr.write(USAGE)
        return 1
    for letter in "OR":
        if letter in flags and not flags[letter].startswith("/"):
            sys.stderr.write(
                f"{PROGRAM}: configuration script ({flags[letter]}) must be an absolute path\n"
            )
            return 1
    try:
        with kernel().transaction() as state:
            if "a" in flags:
                names = [
                    i.name
                    for i in state.interfaces
                    if i.is_up
                    and "LOOPBACK" not in i.flags
                    and ("F" in flags or "ACCEPT_RTADV" in i.nd6)
                ]
            for name in names:
                interface = state.find(name)
                if interface is None:
                    # ifconfig(): warnmsg(LOG_ERR) goes to stderr in rtsol's foreground
                    sys.stderr.write(
                        f"{PROGRAM}: failed to get link layer information for {name}\n"
                        f"{PROGRAM}: failed to initialize {name}\n"
                    )
                    raise SystemExit(1)
                if "F" in flags and "ACCEPT_RTADV" not in interface.nd6:
                    interface.nd6.append("ACCEPT_RTADV")
                if not interface.is_up:
                    interface.flags.append("UP")
                _ensure_link_local(interface)
    except KernelError as error:
        sys.stderr.write(f"{PROGRAM}: {error}\n")
        return 1
    except SystemExit as leaving:
        return int(leaving.code or 0)
    _record(names)
    return 0
