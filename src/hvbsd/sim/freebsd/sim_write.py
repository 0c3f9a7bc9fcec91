"""``hvbsd-sim-write [-t SECONDS] PATH [TEXT]``: a write that a UFS suspension blocks.

The simulation does NOT intercept real writes: a process inside a simulated
guest writes to the host's overlay whatever the simulated kernel says about
suspensions.  This command is the one writer that honours them, so checks can
observe what a suspended UFS does to writers on FreeBSD (vfs_write_suspend:
writers wait, readers go on).  It finds the mount holding PATH in the kernel's
mount table; while that filesystem is UFS and suspended it waits (printing
``blocked MOUNTPOINT`` once), then appends TEXT (default ``hvbsd-sim-write``)
and a newline to PATH and prints ``written``.

exit status: 0 written, 75 still suspended after -t SECONDS, 1 error, 64 usage
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

from hvbsd.sim.freebsd._common import kernel
from hvbsd.sim.kernel import KernelError, Mount, State

PROGRAM = "hvbsd-sim-write"
USAGE = f"usage: {PROGRAM} [-t seconds] path [text]\n"
POLL_SECONDS = 0.02
EX_TEMPFAIL = 75


def mount_of(state: State, path: str) -> Optional[Mount]:
    """The mount whose mount point is the longest prefix of ``path``."""
    best: Optional[Mount] = None
    for mount in state.mounts:
        point = mount.mountpoint.rstrip("/") or "/"
        inside = point == "/" or path == point or path.startswith(point + "/")
        if inside and (best is None or len(point) > len(best.mountpoint.rstrip("/") or "/")):
            best = mount
    return best


def blocking_mount(state: State, path: str) -> Optional[Mount]:
    """The suspended UFS holding ``path``, if a write there would block now."""
    mount = mount_of(state, path)
    if mount is None or mount.fstype != "ufs" or mount.fsid not in state.suspended:
        return None
    return mount


def main(argv: list[str]) -> int:
    timeout: Optional[float] = None
    args = list(argv)
    if args[:1] == ["-t"] and len(args) > 1:
        try:
            timeout = float(args[1])
        except ValueError:
            sys.stderr.write(f"{PROGRAM}: -t {args[1]!r}: not a number of seconds\n{USAGE}")
            return 64
        args = args[2:]
    if not 1 <= len(args) <= 2 or args[0].startswith("-"):
        sys.stderr.write(USAGE)
        return 64
    path = os.path.normpath(os.path.abspath(args[0]))
    text = args[1] if len(args) == 2 else PROGRAM
    started = time.monotonic()
    reported = False
    while True:
        try:
            mount = blocking_mount(kernel().snapshot(), path)
        except KernelError as error:
            sys.stderr.write(f"{PROGRAM}: {error}\n")
            return 1
        if mount is None:
            break
        if not reported:
            sys.stdout.write(f"blocked {mount.mountpoint}\n")
            sys.stdout.flush()
            reported = True
        if timeout is not None and time.monotonic() - started >= timeout:
            sys.stderr.write(f"{PROGRAM}: {mount.mountpoint} still suspended after"
                             f" {timeout:g} s\n")
            return EX_TEMPFAIL
        time.sleep(POLL_SECONDS)
    try:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(text + "\n")
    except OSError as error:
        sys.stderr.write(f"{PROGRAM}: {path}: {error.strerror}\n")
        return 1
    sys.stdout.write("written\n")
    sys.stdout.flush()
    return 0
