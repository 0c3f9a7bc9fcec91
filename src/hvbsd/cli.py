"""The `hvbsd` command: one argparse tree, each part registering its own verbs.

Each part's module exposes ``register(subparsers)``; it adds its parsers and sets
``func`` (a callable taking the parsed namespace and returning an exit status).
Heavy imports (ansible, jinja2) happen inside those callables, so `hvbsd --help`
and the daemon bundle stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Optional, Sequence

from hvbsd import __version__

# module path -> one line for the docs; order is the order in --help
PARTS = (
    "hvbsd.render.cli",
    "hvbsd.devd.cli",
    "hvbsd.vss.cli",
    "hvbsd.kvp.cli",
    "hvbsd.sim.cli",
    "hvbsd.lab.cli",
    "hvbsd.check",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hvbsd",
        description="FreeBSD guests on Hyper-V and Azure: render, lint, simulate, test.",
    )
    parser.add_argument("--version", action="version", version=f"hvbsd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in PARTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # part not built yet
            raise
        register: Callable[[argparse._SubParsersAction], None] = module.register
        register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
