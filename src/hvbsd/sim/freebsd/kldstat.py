"""kldstat(8): the loaded kernel files and modules, as FreeBSD's sbin/kldstat/kldstat.c.

rc.subr's load_kld asks ``kldstat -q -m MODULE`` (and ``kldstat -v`` for a
pattern).  The simulated kernel holds the Hyper-V drivers GENERIC builds in,
the modules loader.conf names (``if_lagg_load="YES"``), ``if_lagg.ko`` once a
lagg exists (ifconfig loads it) and ``zfs.ko`` when ZFS is mounted.
"""

from __future__ import annotations

import errno
import re
import sys
from dataclasses import dataclass

from hvbsd.sim.freebsd._common import (
    GetOpt,
    UsageError,
    kernel,
    run_reporting_kernel_errors,
    strerror,
)

PROGRAM = "kldstat"
USAGE = "usage: kldstat [-dhqv] [-i id] [-n filename]\n       kldstat [-dq] [-m modname]\n"
POINTER_WIDTH = 18  # sizeof(void *) * 2 + 2 on amd64
KERNEL_MODULES = (
    "cam",
    "cd9660",
    "ether",
    "hn",
    "hv_kvp",
    "hv_shutdown",
    "hv_storvsc",
    "hv_timesync",
    "hv_utils",
    "hv_vss",
    "hvheartbeat",
    "hvkbd",
    "ipfw",
    "mlx5",
    "mlx5en",
    "msdosfs",
    "nfscl",
    "pci",
    "tmpfs",
    "ufs",
    "vmbus",
)


@dataclass
class LoadedFile:
    ident: int
    refs: int
    address: int
    size: int
    name: str
    path: str
    modules: list[str]


def files() -> list[LoadedFile]:
    """The loaded files, numbered from 1 as the kernel numbers them."""
    state = kernel().snapshot()
    found = [("kernel", 0xFFFFFFFF80200000, 0x1F3C6C8, list(KERNEL_MODULES))]
    # loader(8) loads each NAME_load="YES" of loader.conf (its module_path NAME.ko)
    for setting, value in state.loader.items():
        module = setting[: -len("_load")]
        wanted = setting.endswith("_load") and value.upper() == "YES"
        if wanted and module not in KERNEL_MODULES and re.fullmatch(r"[A-Za-z0-9_]{1,64}", module):
            address = 0xFFFFFFFF82300000 + 0x10000 * len(found)
            found.append((f"{module}.ko", address, 0x6A30, [module]))
    # ifconfig(8) create loads if_lagg.ko for a lagg (ifmaybeload)
    if any(i.driver == "lagg" for i in state.interfaces) and not any(
        f[0] == "if_lagg.ko" for f in found
    ):
        found.append(("if_lagg.ko", 0xFFFFFFFF82320000, 0x6A30, ["if_lagg"]))
    if any(mount.fstype == "zfs" for mount in state.mounts):
        found.append(("zfs.ko", 0xFFFFFFFF82400000, 0x5E5C38, ["zfsctrl", "zfs", "zfs_vdev"]))
    loaded = []
    for ident, (name, address, size, modules) in enumerate(found, start=1):
        refs = len(found) if ident == 1 else 1
        path = f"/boot/kernel/{name}"
        loaded.append(LoadedFile(ident, refs, address, size, name, path, modules))
    return loaded


def _line(entry: LoadedFile, verbose: bool) -> str:
    # printfile(): "%2d %4d %#0*jx %8zx %s", then the path and modules with -v
    address = f"{entry.address:#0{POINTER_WIDTH}x}"
    text = f"{entry.ident:2d} {entry.refs:4d} {address} {entry.size:8x} {entry.name}"
    if not verbose:
        return text + "\n"
    text += f" ({entry.path})\n\tContains modules:\n\t\t Id Name\n"
    for number, module in enumerate(entry.modules, start=1):
        text += f"\t\t{number:3d} {module}\n"
    return text


def main(argv: list[str]) -> int:
    return run_reporting_kernel_errors(PROGRAM, _main, argv)


def _main(argv: list[str]) -> int:
    flags: dict[str, str] = {}
    options = GetOpt(argv, "dhi:m:n:qv")
    try:
        for letter, value in options:
            flags[letter] = value
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    if options.operands:
        sys.stderr.write(USAGE)
        return 1
    quiet = "q" in flags
    loaded = files()
    if "m" in flags:
        name = flags["m"]
        for entry in loaded:
            if name in entry.modules:
                if quiet:
                    return 0
                number = entry.modules.index(name) + 1
                sys.stdout.write("Id  Refs Name\n")
                sys.stdout.write(f"{number:3d} {1:4d} {name}\n")
                return 0
        if not quiet:
            sys.stderr.write(f"{PROGRAM}: can't find module {name}: {strerror(errno.ENOENT)}\n")
        return 1
    chosen = loaded
    if "n" in flags:
        wanted = flags["n"]
        chosen = [e for e in loaded if wanted in (e.name, e.name[: -len(".ko")], e.path)]
        if not chosen:
            if not quiet:
                sys.stderr.write(f"{PROGRAM}: can't find file {wanted}: {strerror(errno.ENOENT)}\n")
            return 1
        if quiet:
            return 0
    if "i" in flags:
        chosen = [e for e in loaded if str(e.ident) == flags["i"]]
        if not chosen:
            reason = strerror(errno.ENOENT)
            sys.stderr.write(f"{PROGRAM}: can't stat file id {flags['i']}: {reason}\n")
            return 1
    sys.stdout.write("Id Refs Address                Size Name\n")
    for entry in chosen:
        sys.stdout.write(_line(entry, "v" in flags))
    return 0
