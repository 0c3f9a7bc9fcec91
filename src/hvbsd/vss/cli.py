"""``hvbsd bundle-vssd OUT``: the daemon as one executable zipapp for the guest."""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path
from typing import Callable, List, Tuple

import hvbsd.vss
from hvbsd.vss import files

DEFAULT_INTERPRETER = "/usr/local/bin/python3"
#: modules the guest does not need (this one imports argparse glue for the host CLI)
HOST_ONLY = {"cli.py"}

MAIN = b'''"""hvbsd_vssd: the Hyper-V VSS daemon of hvbsd."""
import sys

sys.dont_write_bytecode = True

from hvbsd.vss.daemon import main  # noqa: E402

sys.exit(main())
'''

PACKAGE_INIT = b'"""hvbsd (the guest-side subset: hvbsd.vss only)."""\n'


DESCRIPTION = ("Write hvbsd_vssd as one executable Python zipapp (standard library only) for"
               " installing on a FreeBSD guest as /usr/local/sbin/hvbsd_vssd.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle-vssd", help="write the VSS daemon as one executable zipapp",
        description=DESCRIPTION)
    _arguments(parser)


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, run)


def add_arguments(parser: argparse.ArgumentParser,
                  run: Callable[[argparse.Namespace], int]) -> None:
    """OUT and --interpreter, the arguments of both bundle commands (kvp's too)."""
    parser.add_argument("out", metavar="OUT", help="file to write")
    parser.add_argument("--interpreter", default=DEFAULT_INTERPRETER, metavar="PATH",
                        help=f"absolute path for the #! line (default {DEFAULT_INTERPRETER})")
    parser.set_defaults(func=run)


def main() -> int:
    """``python -m hvbsd.vss.cli OUT``: the same, needing only hvbsd.vss (the
    Ansible collection runs it from its own copy of the sources)."""
    parser = argparse.ArgumentParser(prog="hvbsd bundle-vssd", description=DESCRIPTION)
    _arguments(parser)
    return run(parser.parse_args())


class WriteFailed(Exception):
    """The output could not be written (disk full, permissions); nothing was left."""


def run(args: argparse.Namespace) -> int:
    return run_bundle("hvbsd bundle-vssd", bundle, args)


def run_bundle(program: str, bundle: Callable[[Path, str], None],
               args: argparse.Namespace) -> int:
    """A bundle command: ``bundle(OUT, interpreter)``; bad input exits 2, a failed write 1."""
    try:
        if not args.out or args.out.endswith("/"):
            raise ValueError(f"OUT {args.out!r} must name the file to write")
        bundle(Path(args.out), args.interpreter)
    except ValueError as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        return 2
    except WriteFailed as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        return 1
    print(f"wrote {args.out}")
    return 0


def archive_bytes(interpreter: str = DEFAULT_INTERPRETER) -> bytes:
    """The zipapp: ``#!`` line, then a zip of hvbsd/vss and a __main__."""
    _check_interpreter(interpreter)
    source = Path(hvbsd.vss.__file__).resolve().parent
    members = [("__main__.py", MAIN), ("hvbsd/__init__.py", PACKAGE_INIT)]
    for module in sorted(source.glob("*.py")):
        if module.name not in HOST_ONLY:
            members.append((f"hvbsd/vss/{module.name}", module.read_bytes()))
    return zipapp_bytes(interpreter, members)


def zipapp_bytes(interpreter: str, members: List[Tuple[str, bytes]]) -> bytes:
    """``#!interpreter``, then a zip of ``members`` (name, data) in that order,
    with fixed metadata (both bundle commands)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(_entry(name), data)
    return b"#!" + interpreter.encode() + b"\n" + buffer.getvalue()


def bundle(out: Path, interpreter: str = DEFAULT_INTERPRETER) -> None:
    """Write the zipapp to ``out`` atomically, mode 0755.

    ValueError (nothing written) for an ``out`` that is empty, in a missing
    directory, or exists and is not a regular file (a directory, a symlink, a
    device such as /dev/full, a FIFO); WriteFailed when writing fails.
    """
    write_bundle(out, archive_bytes(interpreter))


def write_bundle(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` atomically, mode 0755 (both bundle commands)."""
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"{out}: directory {directory} does not exist")
    try:
        files.check_target(str(out))
    except files.FileRefused as exc:
        raise ValueError(exc.strerror) from None
    try:
        files.write_atomically(str(out), data, mode=0o755)
    except files.FileRefused as exc:
        raise ValueError(exc.strerror) from None
    except OSError as exc:
        raise WriteFailed(f"{out}: cannot write: {exc.strerror or exc}; nothing written") from None


def _check_interpreter(interpreter: str) -> None:
    if not interpreter.startswith("/"):
        raise ValueError(f"--interpreter {interpreter!r} must be an absolute path"
                         " (rc.subr compares it with command_interpreter)")
    if any(c.isspace() for c in interpreter):
        raise ValueError(f"--interpreter {interpreter!r} must not contain whitespace")


def _entry(name: str) -> zipfile.ZipInfo:
    # fixed timestamps: the same sources give the same bytes
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


if __name__ == "__main__":
    sys.exit(main())
