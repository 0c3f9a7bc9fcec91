"""mount(8) listing: ``mount`` (``source on point (type, options)``) and ``mount -p``."""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import kernel
from hvbsd.sim.kernel import Mount

PROGRAM = "mount"
USAGE = (
    "usage: mount [-adflpruvw] [-F fstab] [-o options] [-t ufs | external_type]\n"
    "       mount [-dfpruvw] special | node\n"
    "       mount [-dfpruvw] [-o options] [-t ufs | external_type] special node\n"
)
LOCAL_TYPES = {"ufs", "zfs", "tmpfs", "devfs", "fdescfs"}


def _tabs(text: str) -> str:
    """mount -p's padding: tabs up to column 24, or one space after that."""
    length = len(text)
    return (
        text
        + ("\t" if length < 8 else "")
        + ("\t" if length < 16 else "")
        + ("\t" if length < 24 else " ")
    )


def fstab_line(mount: Mount) -> str:
    options = ",".join((["ro"] if mount.readonly else ["rw"]) + mount.options)
    line = _tabs(mount.source) + _tabs(mount.mountpoint) + mount.fstype + "\t"
    line += options + ("\t" if len(options) < 8 else " ")
    if mount.fstype == "ufs":
        line += "\t1 1" if mount.mountpoint == "/" else "\t2 2"
    else:
        line += "\t0 0"
    return line + "\n"


def listing_line(mount: Mount) -> str:
    words = [mount.fstype]
    if mount.fstype in LOCAL_TYPES:
        words.append("local")
    if mount.readonly:
        words.append("read-only")
    words.extend(mount.options)
    if mount.fstype == "ufs":
        words.append("soft-updates")
    return f"{mount.source} on {mount.mountpoint} ({', '.join(words)})\n"


def main(argv: list[str]) -> int:
    fstab_format = False
    for argument in argv:
        if not argument.startswith("-"):
            sys.stderr.write(f"{PROGRAM}: mounting is not possible in the simulated guest\n")
            return 1
        for letter in argument[1:]:
            if letter == "p":
                fstab_format = True
            elif letter not in "dluv":
                sys.stderr.write(f"{PROGRAM}: illegal option -- {letter}\n" + USAGE)
                return 1
    state = kernel().snapshot()
    for mount in state.mounts:
        sys.stdout.write(fstab_line(mount) if fstab_format else listing_line(mount))
    return 0
