"""``python -m hvbsd.sim.freebsd NAME ARGS...``: run one FreeBSD command."""

from __future__ import annotations

import importlib
import sys

from hvbsd.sim.freebsd import command_names


def run(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m hvbsd.sim.freebsd command [args ...]\n")
        return 64
    modules = command_names()
    name = argv[0].rsplit("/", 1)[-1]
    module_name = modules.get(name)
    if module_name is None:
        sys.stderr.write(f"hvbsd.sim.freebsd: {name}: unknown command\n")
        return 127
    module = importlib.import_module(module_name)
    status: int = module.main(argv[1:])
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
