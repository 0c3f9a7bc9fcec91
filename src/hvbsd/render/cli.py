"""`hvbsd render`: one host from a variables file, or every host of an inventory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_DIFFERENT = 1
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render the guest files for one host or an inventory",
        description="Render hvbsd's templates into DIR as a tree of guest paths "
        "(DIR/<host>/... with an inventory). Invalid variables: every problem is "
        "listed, nothing is written, exit status 2.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vars", metavar="FILE", help="YAML file of one host's variables")
    source.add_argument("-i", "--inventory", metavar="INVENTORY", help="Ansible inventory")
    parser.add_argument("--out", metavar="DIR", required=True, help="output directory")
    parser.add_argument("--limit", metavar="PATTERN", help="hosts of the inventory to render")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; show a diff and exit 1 if DIR differs")
    parser.set_defaults(func=run)


def load_vars_file(path: str) -> dict[str, Any]:
    """The variables of one host's YAML file; ValueError names the file and what is wrong."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of variables, found {type(data).__name__}")
    return data


def run(args: argparse.Namespace) -> int:
    from hvbsd.render.engine import InvalidVariables, render_host
    from hvbsd.render.output import diff_tree, tree_of, write_tree

    if args.limit and not args.inventory:
        print("hvbsd render: --limit needs -i INVENTORY", file=sys.stderr)
        return EXIT_INVALID
    try:
        if args.vars:
            hosts = {"": load_vars_file(args.vars)}
        else:
            from hvbsd.render.inventory import inventory_hosts

            hosts = inventory_hosts(args.inventory, args.limit)
    except ValueError as exc:
        print(f"hvbsd render: {exc}", file=sys.stderr)
        return EXIT_INVALID

    tree: dict[str, tuple[bytes, int]] = {}
    refused: list[InvalidVariables] = []
    for host, variables in hosts.items():
        source = args.vars if not host else f"host {host}"
        try:
            tree.update(tree_of(render_host(variables, source), prefix=host))
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

    out = Path(args.out)
    if args.check:
        diff = diff_tree(out, tree)
        sys.stdout.writelines(diff)
        return EXIT_DIFFERENT if diff else 0
    try:
        write_tree(out, tree)
    except OSError as exc:
        print(f"hvbsd render: {out}: cannot write: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0
