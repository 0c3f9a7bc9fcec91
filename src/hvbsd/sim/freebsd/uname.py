"""uname(1) of a simulated FreeBSD amd64 guest, from its kernel's sysctls.

The release fields (-r, -v, -K, -U) are the guest's release's (hvbsd.releases):
kern.osrelease, kern.version and kern.osreldate, set when the guest is created.
"""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import kernel

PROGRAM = "uname"
USAGE = "usage: uname [-abiKmnoprsUv]\n"


def main(argv: list[str]) -> int:
    letters = ""
    for argument in argv:
        if not argument.startswith("-") or argument == "-":
            sys.stderr.write(USAGE)
            return 1
        letters += argument[1:]
    for letter in letters:
        if letter not in "abiKmnoprsUv":
            sys.stderr.write(f"{PROGRAM}: illegal option -- {letter}\n" + USAGE)
            return 1
    if "a" in letters:
        letters = "snrvm"
    if not letters:
        letters = "s"
    state = kernel().snapshot()
    values = {
        "s": state.sysctl_value("kern.ostype"),
        "o": state.sysctl_value("kern.ostype"),
        "n": state.sysctl_value("kern.hostname"),
        "r": state.sysctl_value("kern.osrelease"),
        "v": str(state.sysctl_value("kern.version")).rstrip("\n"),
        "m": state.sysctl_value("hw.machine"),
        "p": state.sysctl_value("hw.machine_arch"),
        "i": "GENERIC",
        "K": str(state.sysctl_value("kern.osreldate")),
        "U": str(state.sysctl_value("kern.osreldate")),
        "b": "",
    }
    # FreeBSD prints the fields in a fixed order whatever the option order.
    order = "snrvmpiKUb"
    sys.stdout.write(" ".join(str(values[c]) for c in order if c in letters) + "\n")
    return 0
