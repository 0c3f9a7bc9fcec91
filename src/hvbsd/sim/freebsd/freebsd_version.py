"""freebsd-version(1): the userland version (-u, default), the kernel's (-k, -r)."""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import kernel

PROGRAM = "freebsd-version"
USAGE = "usage: freebsd-version [-kru] [-j jail]\n"


def main(argv: list[str]) -> int:
    letters = ""
    for argument in argv:
        if not argument.startswith("-") or len(argument) < 2:
            sys.stderr.write(USAGE)
            return 1
        letters += argument[1:]
    if any(letter not in "kru" for letter in letters):
        sys.stderr.write(USAGE)
        return 1
    release = str(kernel().snapshot().sysctl_value("kern.osrelease"))
    for _letter in letters or "u":
        sys.stdout.write(release + "\n")
    return 0
