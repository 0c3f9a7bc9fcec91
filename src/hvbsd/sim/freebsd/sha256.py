"""sha256(1): the md5(1) family with SHA-256."""

from __future__ import annotations

from hvbsd.sim.freebsd.md5 import run


def main(argv: list[str]) -> int:
    return run("sha256", argv)
