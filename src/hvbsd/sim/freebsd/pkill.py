"""pkill(1): signal processes by name (``-x``, ``-f``, ``-F pidfile``, ``-SIGNAL``)."""

from __future__ import annotations

from hvbsd.sim.freebsd._procmatch import run


def main(argv: list[str]) -> int:
    return run("pkill", argv)
