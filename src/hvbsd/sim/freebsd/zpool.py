"""zpool(8) ``sync [pool ...]`` and ``list -H -o name`` over the guest's ZFS mounts."""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import kernel

PROGRAM = "zpool"


def _pools(sources: list[str]) -> list[str]:
    pools: list[str] = []
    for source in sources:
        pool = source.split("/", 1)[0]
        if pool not in pools:
            pools.append(pool)
    return pools


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("missing command\nusage: zpool command args ...\n")
        return 2
    command, args = argv[0], argv[1:]
    if command == "sync":
        with kernel().transaction() as state:
            pools = _pools([m.source for m in state.mounts if m.fstype == "zfs"])
            for name in args:
                if name not in pools:
                    sys.stderr.write(f"cannot open '{name}': no such pool\n")
                    return 1
            for name in args or pools:
                state.pool_syncs[name] = state.pool_syncs.get(name, 0) + 1
        return 0
    if command == "list":
        pools = _pools([m.source for m in kernel().snapshot().mounts if m.fstype == "zfs"])
        if not pools:
            sys.stdout.write("no pools available\n")
        for name in pools:
            sys.stdout.write(name + "\n")
        return 0
    sys.stderr.write(f"unrecognized command '{command}'\nusage: zpool command args ...\n")
    return 2
