"""pgrep(1): list processes by name (``-x``, ``-f``, ``-l``, ``-F pidfile``, ``-d``)."""

from __future__ import annotations

from hvbsd.sim.freebsd._procmatch import run


def main(argv: list[str]) -> int:
    return run("pgrep", argv)
