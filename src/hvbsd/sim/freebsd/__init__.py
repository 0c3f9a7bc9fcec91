"""FreeBSD's commands and base files for simulated guests.

``COMMANDS`` maps the guest path of each command to the module implementing
it; every such module has ``main(argv: list[str]) -> int`` where ``argv``
excludes the program name.  ``python -m hvbsd.sim.freebsd NAME ARGS...`` runs
one command by its base name (``ifconfig``, ``freebsd-version``...).
``base_files(stock)`` yields the files of FreeBSD's base system that the guest
needs (``/etc/rc.subr``, ``/etc/network.subr``, ``/etc/devd.conf``...) from
the ``base`` tree next to this module: ``base/common`` holds what every
supported release shares, ``base/<stock>`` (``14``, ``15``: a release's
``stock`` in releases.yml) what that release's own files say.
``sh_wrapper(bash)`` is the guest's ``/bin/sh``: bash made to behave as
FreeBSD's sh by the base file ``SH_RC``.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Iterator, Optional, Tuple

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
    "/usr/bin/limits": f"{_PACKAGE}.limits",
    "/bin/kenv": f"{_PACKAGE}.kenv",
    "/bin/pwait": f"{_PACKAGE}.pwait",
    "/usr/bin/protect": f"{_PACKAGE}.protect",
    "/bin/cpuset": f"{_PACKAGE}.cpuset",
    "/sbin/rtsol": f"{_PACKAGE}.rtsol",
    "/sbin/kldstat": f"{_PACKAGE}.kldstat",
    "/bin/ps": f"{_PACKAGE}.ps",
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

# The guest's /bin/sh is a wrapper that starts bash under the name SH_NAME
# (not "sh": bash named sh starts in POSIX mode and reads no startup file)
# with BASH_ENV naming SH_RC, which makes it behave as FreeBSD's sh.
SH_PATH = "/bin/sh"
SH_RC = "/usr/libexec/hvbsd-sim/freebsd-sh.bash"
SH_NAME = "sh-freebsd"
# Where Debian (and every merged- or split-/usr Linux) has bash; a path the
# guest sees: its /usr is an overlay over the host's, its /bin the host's.
BASH_PATHS = ("/usr/bin/bash", "/bin/bash")

BASE_DIRECTORY = Path(__file__).resolve().parent / "base"
COMMON_TREE = BASE_DIRECTORY / "common"
_STOCK_NAME = re.compile(r"[0-9]{2}")

BaseFile = Tuple[str, bytes, int]


def host_bash() -> Optional[str]:
    """The host's bash as the guest reaches it, or None when there is none."""
    for path in BASH_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def sh_wrapper(bash: str, rc: str = SH_RC) -> bytes:
    """The guest's ``/bin/sh``: ``bash`` reading ``rc`` (FreeBSD's sh on bash).

    ``-p`` keeps the wrapper's own bash from reading a BASH_ENV it was given;
    the bash it starts reads ``rc`` through BASH_ENV, and ``rc`` unsets
    BASH_ENV at once.  An interactive sh (no arguments) reads no BASH_ENV:
    it gets ``rc`` through --rcfile.
    """
    quoted_bash, quoted_rc = shlex.quote(bash), shlex.quote(rc)
    return (
        f"#!{bash} -p\n"
        "# The simulated FreeBSD guest's sh (hvbsd): bash behaving as FreeBSD's sh.\n"
        f'[ "$#" -gt 0 ] || set -- --rcfile {quoted_rc}\n'
        f'BASH_ENV={quoted_rc} exec -a {SH_NAME} {quoted_bash} "$@"\n'
    ).encode()


def command_names() -> dict[str, str]:
    """Base name of each command (``freebsd-version``) -> its module."""
    return {os.path.basename(path): module for path, module in COMMANDS.items()}


def stock_tree(stock: str) -> Path:
    """The directory of one stock's own files, laid out as a guest's root.

    ``load_tree(stock_tree("15"))`` reads that release's ``/etc/devd.conf`` and
    ``/etc/devd/*.conf`` as devd would; ValueError for a stock hvbsd has no
    files for.
    """
    tree = BASE_DIRECTORY / str(stock)
    if not _STOCK_NAME.fullmatch(str(stock)) or not tree.is_dir():
        raise ValueError(f"stock {str(stock)[:20]!r}: no simulated FreeBSD base files for it")
    return tree


def base_files(stock: Optional[str] = None) -> Iterator[BaseFile]:
    """Yield (guest path, content, mode) for every base file of a guest of ``stock``.

    ``stock`` is a release's ``stock`` (``hvbsd.releases``); by default the
    default release's.  A file of the stock's tree replaces the common one of
    the same path.  rc.d scripts and ``/etc/pccard_ether`` are executable
    (0755); everything else is 0644, as on FreeBSD.
    """
    if stock is None:
        from hvbsd import releases

        stock = releases.default().stock
    files: dict[str, Path] = {}
    for tree in (COMMON_TREE, stock_tree(stock)):
        for path in sorted(tree.rglob("*")):
            if path.is_file() and not path.name.endswith((".pyc", "~")):
                files["/" + path.relative_to(tree).as_posix()] = path
    for guest_path in sorted(files):
        content = files[guest_path].read_bytes()
        yield guest_path, content, 0o755 if _is_executable(guest_path) else 0o644


def _is_executable(guest_path: str) -> bool:
    directory = os.path.dirname(guest_path)
    return directory.endswith("/rc.d") or guest_path in _EXECUTABLE_FILES


_EXECUTABLE_FILES = frozenset({"/etc/pccard_ether"})
