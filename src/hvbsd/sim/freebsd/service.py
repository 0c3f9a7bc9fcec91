"""service(8): run rc.d scripts from /etc/rc.d and the local_startup directories.

``service NAME ARGS...`` runs the script with a clean environment as
FreeBSD's service does; ``-e`` lists enabled scripts, ``-l`` every script,
``-r`` every script in start order (here: /etc/rc.d first, then the local
directories, each sorted by name).
"""

from __future__ import annotations

import os
import subprocess
import sys

from hvbsd.sim.freebsd._common import GetOpt, UsageError

PROGRAM = "service"
BASE_DIRECTORY = "/etc/rc.d"
CLEAN_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
USAGE = (
    "usage: service [-j <jail name or id>] -e\n"
    "       service [-j <jail name or id>] -R\n"
    "       service [-j <jail name or id>] [-v] -l | -r\n"
    "       service [-j <jail name or id>] [-v] <rc.d script> "
    "start|stop|etc. [args...]\n"
)


def _local_startup() -> list[str]:
    """local_startup as rc.conf leaves it (rc.subr's load_rc_config)."""
    result = subprocess.run(
        ["/bin/sh", "-c", '. /etc/rc.subr && load_rc_config && echo "$local_startup"'],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return ["/usr/local/etc/rc.d"]
    return result.stdout.split()


def _directories() -> list[str]:
    return [BASE_DIRECTORY, *[d for d in _local_startup() if d != BASE_DIRECTORY]]


def _scripts() -> list[str]:
    found = []
    for directory in _directories():
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.append(path)
    return found


def _clean_environment() -> dict[str, str]:
    env = {"HOME": "/", "PATH": CLEAN_PATH}
    # The simulated guest's commands find their kernel through this variable.
    for name in ("HVBSD_SIM_KERNEL_DIR", "RC_DEFAULTS"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _enabled(path: str) -> bool:
    """What ``service -e`` checks: the script's rcvar is set to YES."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            if not any(line.startswith("rcvar") for line in stream):
                return False
    except OSError:
        return False
    result = subprocess.run(
        [path, "enabled"], env=_clean_environment(), capture_output=True, check=False
    )
    return result.returncode == 0


def main(argv: list[str]) -> int:
    list_enabled = list_all = list_order = verbose = False
    options = GetOpt(argv, "elrv", double_dash=False, dash_is_operand=False)
    try:
        for letter, _value in options:
            if letter == "e":
                list_enabled = True
            elif letter == "l":
                list_all = True
            elif letter == "r":
                list_order = True
            elif letter == "v":
                verbose = True
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    rest = options.operands
    if list_enabled:
        for path in _scripts():
            if _enabled(path):
                sys.stdout.write(path + "\n")
        return 0
    if list_all:
        names = sorted({os.path.basename(p) for p in _scripts()})
        for name in names:
            sys.stdout.write(name + "\n")
        return 0
    if list_order:
        for path in _scripts():
            sys.stdout.write(path + "\n")
        return 0
    if not rest:
        sys.stderr.write(USAGE)
        return 1
    script, arguments = rest[0], rest[1:]
    directories = _directories()
    for directory in directories:
        path = os.path.join(directory, script)
        if "/" not in script and os.path.isfile(path) and os.access(path, os.X_OK):
            if verbose:
                sys.stdout.write(f"{script} found in {directory}\n")
            sys.stdout.flush()
            result = subprocess.run([path, *arguments], env=_clean_environment(), check=False)
            return result.returncode
    local = " ".join(d for d in directories if d != BASE_DIRECTORY)
    sys.stderr.write(
        f"{script} does not exist in /etc/rc.d or the local startup\n"
        f"directories ({local}), or is not executable.\n"
    )
    return 1
