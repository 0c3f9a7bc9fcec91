"""``hvbsd bundle-kvpd OUT``: the KVP daemon as one executable zipapp for the guest.

The archive holds ``hvbsd/kvp`` and the three modules it shares with the VSS
daemon (``hvbsd/vss/files.py``, ``log.py``, ``detach.py``), nothing else: the
guest needs only Python's standard library. ``register(subparsers)`` is what
hvbsd's CLI calls to offer the command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import hvbsd.kvp
import hvbsd.vss
from hvbsd.vss.cli import (
    DEFAULT_INTERPRETER,
    _check_interpreter,
    add_arguments,
    run_bundle,
    write_bundle,
    zipapp_bytes,
)

HOST_ONLY = {"cli.py"}
SHARED = ("__init__.py", "files.py", "log.py", "detach.py")

MAIN = b'''"""hvbsd_kvpd: the Hyper-V KVP daemon of hvbsd."""
import sys

sys.dont_write_bytecode = True

from hvbsd.kvp.daemon import main  # noqa: E402

sys.exit(main())
'''
PACKAGE_INIT = b'"""hvbsd (the guest-side subset: hvbsd.kvp and what it shares)."""\n'
VSS_INIT = b'"""hvbsd.vss: only the modules hvbsd_kvpd shares with hvbsd_vssd."""\n'
DESCRIPTION = ("Write hvbsd_kvpd as one executable Python zipapp (standard library only) for"
               " installing on a FreeBSD guest as /usr/local/sbin/hvbsd_kvpd.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bundle-kvpd", help="write the KVP daemon as one zipapp",
                                   description=DESCRIPTION)
    _arguments(parser)


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, run)


def main() -> int:
    parser = argparse.ArgumentParser(prog="hvbsd bundle-kvpd", description=DESCRIPTION)
    _arguments(parser)
    return run(parser.parse_args())


def archive_bytes(interpreter: str = DEFAULT_INTERPRETER) -> bytes:
    _check_interpreter(interpreter)
    kvp = Path(hvbsd.kvp.__file__).resolve().parent
    vss = Path(hvbsd.vss.__file__).resolve().parent
    members = [("__main__.py", MAIN), ("hvbsd/__init__.py", PACKAGE_INIT)]
    for module in sorted(kvp.glob("*.py")):
        if module.name not in HOST_ONLY:
            members.append((f"hvbsd/kvp/{module.name}", module.read_bytes()))
    for name in SHARED:
        data = VSS_INIT if name == "__init__.py" else (vss / name).read_bytes()
        members.append((f"hvbsd/vss/{name}", data))
    return zipapp_bytes(interpreter, members)


def bundle(out: Path, interpreter: str = DEFAULT_INTERPRETER) -> None:
    """Write the zipapp to ``out`` atomically, mode 0755 (ValueError: nothing written)."""
    write_bundle(out, archive_bytes(interpreter))


def run(args: argparse.Namespace) -> int:
    return run_bundle("hvbsd bundle-kvpd", bundle, args)


if __name__ == "__main__":
    sys.exit(main())
