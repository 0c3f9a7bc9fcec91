"""FreeBSD's commands and base files for simulated guests.

``COMMANDS`` maps the guest path of each command to the module implementing
it; every such module has ``main(argv: list[str]) -> int`` where ``argv``
excludes the program name.  ``python -m hvbsd.sim.freebsd NAME ARGS...`` runs
one command by its base name (``ifconfig``, ``freebsd-version``...).
``base_files()`` yields the files of FreeBSD's base system that the guest
needs (``/etc/rc.subr``, ``/etc/network.subr``...) from the ``base`` tree next
to this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Tuple

_PACKAGE = "hvbsd.sim.freebsd"

COMMANDS: dict[str, str] = {
    "/sbin/ifconfig": f"{_PACKAGE}.ifconfig",
    "/sbin/sysctl": f"{_PACKAGE}.sysctl",
    "/sbin/dhclient": f"{_PACKAGE}.dhclient",
    "/sbin/mount": f"{_PACKAGE}.mount",
    "/sbin/zpool": f"{_PACKAGE}.zpool",
    "/sbin/md5": f"{_PACKAGE}.md5",
    "/sbin/sha256": f"{_PACKAGE}.sha256",
    "/bin/pkill": f"{_PACKAGE}.pkill",
    "/bin/pgrep": f"{_PACKAGE}.pgrep",
    "/bin/freebsd-version": f"{_PACKAGE}.freebsd_version",
    "/usr/bin/logger": f"{_PACKAGE}.logger",
    "/usr/bin/uname": f"{_PACKAGE}.uname",
    "/usr/bin/stat": f"{_PACKAGE}.stat",
    "/usr/sbin/sysrc": f"{_PACKAGE}.sysrc",
    "/usr/sbin/service": f"{_PACKAGE}.service",
    "/usr/sbin/daemon": f"{_PACKAGE}.daemon",
    "/usr/sbin/pkg": f"{_PACKAGE}.pkg",
    "/usr/local/sbin/pkg": f"{_PACKAGE}.pkg",
    "/usr/local/sbin/hvbsd-sim-write": f"{_PACKAGE}.sim_write",
}

# Directories a FreeBSD guest has even when empty (git keeps no empty dirs).
BASE_DIRECTORIES: tuple[str, ...] = (
    "/usr/local/etc/rc.d",
    "/usr/local/etc/devd",
    "/etc/rc.conf.d",
    "/boot/loader.conf.d",
    "/var/run/dhclient",
    "/var/log",
    "/var/db",
)

BASE_DIRECTORY = Path(__file__).resolve().parent / "base"

BaseFile = Tuple[str, bytes, int]


def command_names() -> dict[str, str]:
    """Base name of each command (``freebsd-version``) -> its module."""
    return {os.path.basename(path): module for path, module in COMMANDS.items()}


def base_files() -> Iterator[BaseFile]:
    """Yield (guest path, content, mode) for every file of the base tree.

    rc.d scripts and ``/etc/pccard_ether`` are executable (0755); everything
    else is 0644, as on FreeBSD.
    """
    for path in sorted(BASE_DIRECTORY.rglob("*")):
        if not path.is_file() or path.name.endswith((".pyc", "~")):
            continue
        content = path.read_bytes()
        guest_path = "/" + path.relative_to(BASE_DIRECTORY).as_posix()
        yield guest_path, content, 0o755 if _is_executable(guest_path) else 0o644


def _is_executable(guest_path: str) -> bool:
    directory = os.path.dirname(guest_path)
    return directory.endswith("/rc.d") or guest_path in _EXECUTABLE_FILES


_EXECUTABLE_FILES = frozenset({"/etc/pccard_ether"})
