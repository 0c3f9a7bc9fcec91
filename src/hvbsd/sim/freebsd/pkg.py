"""pkg(8), the parts testinfra and the roles use, over the guest's package list.

``pkg query FORMAT NAME...`` (``%n`` name, ``%v`` version, ``%o`` origin,
``%%``) exits 0 when every name is installed and 69 (EX_UNAVAILABLE) when
one is not, which is what testinfra's FreeBSDPackage expects;
``pkg info [-e] NAME``; ``pkg install [-y] NAME...`` records the package.
"""

from __future__ import annotations

import sys

from hvbsd.sim.freebsd._common import kernel

PROGRAM = "pkg"
EX_USAGE = 64
EX_UNAVAILABLE = 69
KNOWN_VERSIONS = {"python311": "3.11.9", "python3": "3_4", "sudo": "1.9.15p5", "rsync": "3.3.0"}


def _expand(template: str, name: str, version: str) -> str:
    out = []
    index = 0
    while index < len(template):
        char = template[index]
        if char == "%" and index + 1 < len(template):
            code = template[index + 1]
            out.append(
                {"n": name, "v": version, "o": f"misc/{name}", "%": "%"}.get(code, "%" + code)
            )
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(
            "Usage: pkg [-v] [-d] [-l] [-N] [-j <jail name or id>|-c <chroot path>"
            "|-r <rootdir>] [-C <configuration file>] [-R <repo config dir>] "
            "[-o var=value] [-4|-6] <command> [<args>]\n"
        )
        return EX_USAGE
    command, args = argv[0], argv[1:]
    if command in ("-v", "--version"):
        sys.stdout.write("1.21.3\n")
        return 0
    if command == "-N":
        return 0
    if command == "query":
        if len(args) < 2:
            sys.stderr.write("Usage: pkg query <query-format> <pkg-name>\n")
            return EX_USAGE
        template, names = args[0], args[1:]
        packages = kernel().snapshot().packages
        status = 0
        for name in names:
            if name in packages:
                sys.stdout.write(_expand(template, name, packages[name]) + "\n")
            else:
                status = EX_UNAVAILABLE
        return status
    if command == "info":
        exists_only = "-e" in args
        names = [a for a in args if not a.startswith("-")]
        packages = kernel().snapshot().packages
        if not names:
            for name in sorted(packages):
                sys.stdout.write(f"{name}-{packages[name]}\n")
            return 0
        status = 0
        for name in names:
            if name not in packages:
                if not exists_only:
                    sys.stderr.write(f"pkg: No package(s) matching {name}\n")
                status = 1
            elif not exists_only:
                sys.stdout.write(f"{name}-{packages[name]}\n")
        return status
    if command == "install":
        names = [a for a in args if not a.startswith("-")]
        if not names:
            sys.stderr.write("Usage: pkg install [-AfInFMqRUy] [-r reponame] <pkg-name> ...\n")
            return EX_USAGE
        with kernel().transaction() as state:
            added = [n for n in names if n not in state.packages]
            for name in added:
                state.packages[name] = KNOWN_VERSIONS.get(name, "1.0")
        if not added:
            sys.stdout.write("The most recent versions of packages are already installed\n")
        for name in added:
            sys.stdout.write(f"[1/1] Installing {name}-{KNOWN_VERSIONS.get(name, '1.0')}...\n")
        return 0
    sys.stderr.write(f"pkg: unknown command: {command}\n")
    return EX_USAGE
