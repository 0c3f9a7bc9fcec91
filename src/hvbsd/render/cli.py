"""`hvbsd render`: one host from a variables file, or every host of an inventory."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_DIFFERENT = 1
EXIT_INVALID = 2
EXIT_WRITE_FAILED = 3

EPILOG = """\
writing:
  Below DIR, render follows no symbolic link and reads or writes only real
  directories and regular files; anything else where it would look is refused.
  Files are staged in DIR/.hvbsd-stage.* and renamed into place; with an
  inventory each DIR/<host> is replaced whole, so it is complete or absent.
  What an interrupted render left is removed by the next render and reported
  by --check.

exit status:
  0  done (with --check: DIR already matches)
  1  --check only: DIR differs; the differences are on stdout
  2  bad input, nothing written: invalid variables or host names, an empty
     --out, a symbolic link or non-regular file below DIR
  3  DIR could not be read or written (no space, read-only, permission,
     another render writing it); each host's tree is left complete, old or new
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render the guest files for one host or an inventory",
        description="Render hvbsd's templates into DIR as a tree of guest paths "
        "(DIR/<host>/... with an inventory). Invalid variables: every problem is "
        "listed, nothing is written, exit status 2.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vars", metavar="FILE", help="YAML file of one host's variables")
    source.add_argument("-i", "--inventory", metavar="INVENTORY", help="Ansible inventory")
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="output directory (created if missing; must not be empty)")
    parser.add_argument("--limit", metavar="PATTERN", help="hosts of the inventory to render")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; show a diff and exit 1 if DIR differs")
    parser.set_defaults(func=run)


def load_vars_file(path: str) -> dict[str, Any]:
    """The variables of one host's YAML file; ValueError names the file and what is wrong."""
    from hvbsd.render.loader import load_vars_file as load

    return load(path)


def run(args: argparse.Namespace) -> int:
    from hvbsd.render.engine import InvalidVariables, render_host
    from hvbsd.render.output import diff_hosts, tree_of

    if args.limit and not args.inventory:
        print("hvbsd render: --limit needs -i INVENTORY", file=sys.stderr)
        return EXIT_INVALID
    if not args.out:
        print("hvbsd render: --out is empty: name the output directory", file=sys.stderr)
        return EXIT_INVALID
    try:
        if args.vars:
            hosts = {"": load_vars_file(args.vars)}
        else:
            from hvbsd.render.inventory import inventory_hosts

            hosts = inventory_hosts(args.inventory, args.limit)  # host names checked there
    except ValueError as exc:
        print(f"hvbsd render: {exc}", file=sys.stderr)
        return EXIT_INVALID

    trees: dict[str, dict[str, tuple[bytes, int]]] = {}
    refused: list[InvalidVariables] = []
    for host, variables in hosts.items():
        source = args.vars if not host else f"host {host}"
        try:
            trees[host] = tree_of(render_host(variables, source))
        except InvalidVariables as exc:
            refused.append(exc)
    if refused:
        for exc in refused:
            print(f"hvbsd render: {exc.source}: {len(exc.problems)} problem(s):",
                  file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        print("hvbsd render: nothing written", file=sys.stderr)
        return EXIT_INVALID

    if args.check:
        try:
            diff = diff_hosts(args.out, trees)
        except Exception as exc:
            return _output_failure(exc, args.out, checking=True)
        sys.stdout.writelines(diff)
        return EXIT_DIFFERENT if diff else 0
    return _write(args.out, trees)


def _write(out: str, trees: dict[str, dict[str, tuple[bytes, int]]]) -> int:
    from hvbsd.render.output import write_hosts

    try:
        write_hosts(out, trees)
    except Exception as exc:
        return _output_failure(exc, out, checking=False)
    return 0


def _output_failure(exc: Exception, out: str, checking: bool) -> int:
    """Say why DIR could not be used; the exit status tells refusal from failure."""
    from hvbsd.render.output import Refused, WriteFailed

    if isinstance(exc, Refused):
        print(f"hvbsd render: {exc}", file=sys.stderr)
        if not checking:
            print("hvbsd render: nothing written", file=sys.stderr)
        return EXIT_INVALID
    if isinstance(exc, WriteFailed):
        print(f"hvbsd render: {exc}", file=sys.stderr)
        if not checking:
            written = [host or out for host in exc.written]
            print("hvbsd render: " + (f"replaced before the failure: {', '.join(written)}"
                                      if written else f"nothing changed in {out}"),
                  file=sys.stderr)
        return EXIT_WRITE_FAILED
    if isinstance(exc, OSError):
        print(f"hvbsd render: {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    raise exc
