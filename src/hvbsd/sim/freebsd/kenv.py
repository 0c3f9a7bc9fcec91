"""kenv(1): the kernel environment, as FreeBSD's bin/kenv/kenv.c prints and changes it.

The simulated kernel's environment is what its loader left there: a few
variables loader(8) sets on every Hyper-V guest, then the ``loader.conf``
settings the kernel booted with (the kernel state's ``loader``).  ``kenv
name=value`` and ``kenv -u name`` change that environment as kenv(2) does.
Exit statuses are kenv.c's: main returns kenv(2)'s -1 on failure (255).
"""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import GetOpt, UsageError, kernel, run_reporting_kernel_errors
from hvbsd.sim.kernel import KernelError

PROGRAM = "kenv"
USAGE = (
    "usage: kenv [-l|-s] [-hNq]\n"
    "       kenv [-qv] variable[=value]\n"
    "       kenv [-q] -u variable\n"
)
FAILED = 255  # main's `return (error)` of -1
# What loader(8) puts in the environment of a Hyper-V generation 2 guest.
LOADER_ENVIRONMENT = (
    ("kernel", "kernel"),
    ("kernelname", "/boot/kernel/kernel"),
    ("module_path", "/boot/kernel;/boot/modules"),
    ("smbios.bios.vendor", "Microsoft Corporation"),
    ("smbios.chassis.maker", "Microsoft Corporation"),
    ("smbios.system.maker", "Microsoft Corporation"),
    ("smbios.system.product", "Virtual Machine"),
)
KENV_MNAMELEN = 128  # sys/kenv.h
KENV_MVALLEN = 128


def environment() -> dict[str, str]:
    """The dynamic kernel environment: loader's variables, then loader.conf's."""
    state = kernel().snapshot()
    found = dict(LOADER_ENVIRONMENT)
    found.update(state.loader)
    return found


def _dump(hints_only: bool, names_only: bool, which: str) -> int:
    if which == "s":
        # kenv(KENV_DUMP_STATIC): the simulated kernel has no static environment
        return -1
    for name, value in environment().items():
        if hints_only and not name.startswith("hint."):
            continue
        sys.stdout.write(f"{name}\n" if names_only else f'{name}="{value}"\n')
    return 0


def _set(name: str, value: str) -> bool:
    if len(name) >= KENV_MNAMELEN or len(value) >= KENV_MVALLEN or not name:
        return False
    try:
        with kernel().transaction() as state:
            state.loader[name] = value
    except KernelError:
        return False
    return True


def _unset(name: str) -> bool:
    try:
        with kernel().transaction() as state:
            if name in state.loader:
                del state.loader[name]
                return True
    except KernelError:
        return False
    return False


def main(argv: list[str]) -> int:
    return run_reporting_kernel_errors(PROGRAM, _main, argv)


def _main(argv: list[str]) -> int:
    flags: set[str] = set()
    options = GetOpt(argv, "hlNqsuv")
    try:
        for letter, _ in options:
            flags.add(letter)
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    rest = options.operands
    name = value = None
    if rest:
        name, has_value, text = rest[0].partition("=")
        value = text if has_value else None
        rest = rest[1:]
    quiet = "q" in flags
    if ("l" in flags and "s" in flags) or (flags & {"h", "N", "l", "s"} and name is not None):
        sys.stderr.write(USAGE)
        return 1
    if rest or (flags & {"u", "v"} and name is None):
        sys.stderr.write(USAGE)
        return 1
    if name is None:
        which = "s" if "s" in flags else "l" if "l" in flags else ""
        if _dump("h" in flags, "N" in flags, which) != 0:
            if not quiet:
                sys.stderr.write(f"{PROGRAM}: requested environment is unavailable\n")
            return FAILED
        return 0
    if value is None:
        if "u" in flags:
            if _unset(name):
                return 0
            if not quiet:
                sys.stderr.write(f"{PROGRAM}: unable to unset {name}\n")
            return FAILED
        current = environment().get(name)
        if current is None:
            if not quiet:
                sys.stderr.write(f"{PROGRAM}: unable to get {name}\n")
            return FAILED
        sys.stdout.write(f'{name}="{current}"\n' if "v" in flags else f"{current}\n")
        return 0
    if _set(name, value):
        sys.stdout.write(f'{name}="{value}"\n')
        return 0
    if not quiet:
        sys.stderr.write(f"{PROGRAM}: unable to set {name} to {value}\n")
    return FAILED
