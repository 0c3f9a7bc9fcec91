"""md5(1)/sha256(1): ``NAME < file`` prints the digest; ``NAME file`` the BSD line."""

from __future__ import annotations

import hashlib
import sys

ALGORITHMS = {"md5": ("md5", "MD5"), "sha256": ("sha256", "SHA256")}


def run(program: str, argv: list[str]) -> int:
    algorithm, label = ALGORITHMS[program]
    quiet = "-q" in argv
    paths = [a for a in argv if not a.startswith("-")]
    if not paths:
        sys.stdout.write(hashlib.new(algorithm, sys.stdin.buffer.read()).hexdigest() + "\n")
        return 0
    status = 0
    for path in paths:
        try:
            with open(path, "rb") as stream:
                digest = hashlib.new(algorithm, stream.read()).hexdigest()
        except OSError as error:
            sys.stderr.write(f"{program}: {path}: {error.strerror}\n")
            status = 1
            continue
        sys.stdout.write(digest + "\n" if quiet else f"{label} ({path}) = {digest}\n")
    return status


def main(argv: list[str]) -> int:
    return run("md5", argv)
