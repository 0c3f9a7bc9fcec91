"""`hvbsd check`: hvbsd's testinfra checks against deployed hosts, from anywhere.

The checks are the ``tests/infra`` tree of hvbsd's data (the checkout's, or
the copy the wheel ships), run by pytest with testinfra; the exit status is
pytest's. Everything after ``--`` goes to pytest unchanged (``-m hvbsd_files``,
``-k``, ``--ssh-config=...``, ``--ansible-inventory=...``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Optional


def pytest_command(args: argparse.Namespace, checks: str) -> list[str]:
    """The pytest command line that runs the checks in ``checks``."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               "--import-mode=importlib", "-o", "addopts=", f"--rootdir={checks}",
               f"--hosts={args.hosts}"]
    if args.hvbsd_vars:
        command.append(f"--hvbsd-vars={args.hvbsd_vars}")
    if args.live:
        command.append("--hvbsd-live")
    if args.timeline:
        command.append(f"--hvbsd-timeline={args.timeline}")
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return [*command, *extra, checks]


def run(args: argparse.Namespace) -> int:
    from hvbsd.locate import DataNotFound, data_path

    try:
        checks = data_path("tests", "infra")
    except DataNotFound as error:
        sys.stderr.write(f"hvbsd check: {error}\n")
        return 2
    if not (checks / "conftest.py").is_file():
        sys.stderr.write(f"hvbsd check: {checks}: the checks are missing; reinstall hvbsd\n")
        return 2
    if args.hvbsd_vars is not None and not args.hvbsd_vars:
        sys.stderr.write("hvbsd check: --hvbsd-vars: empty file name\n")
        return 2
    try:
        return subprocess.run(pytest_command(args, str(checks)), check=False).returncode
    except KeyboardInterrupt:
        return 130


def _hosts(value: str) -> str:
    if not value or "\n" in value or "\0" in value:
        raise argparse.ArgumentTypeError("expected testinfra host URIs, comma separated")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="check deployed hosts with hvbsd's testinfra checks",
        description="Check hosts deployed with hvbsd: tier 1 the files (hvbsd_files), tier 2"
        " settings and the running daemon, read-only (hvbsd_settings, with --live), tier 3"
        " scenarios through the simulated Hyper-V host (hvbsd_scenarios, with --live; they"
        " skip where the lab installed none). Arguments after -- go to pytest.",
        epilog="examples: hvbsd check --hosts=ssh://vm1 --hvbsd-vars vars.yml --live;"
        " hvbsd check --hosts='ansible://all?ansible_inventory=inv.yml'")
    parser.add_argument("--hosts", required=True, type=_hosts, metavar="URI[,URI...]",
                        help="testinfra hosts: ssh://vm1, ansible://all?ansible_inventory=FILE,"
                        " hvbsd-sim://g1 ...")
    parser.add_argument("--hvbsd-vars", metavar="FILE",
                        help="the hvbsd variables the hosts were deployed with (not needed for"
                        " ansible:// hosts: their variables come from the inventory)")
    parser.add_argument("--live", action="store_true",
                        help="the hosts were deployed and rebooted: also run tiers 2 and 3")
    parser.add_argument("--timeline", metavar="DIR",
                        help="write what each scenario did as JSON files into DIR")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST_ARGS",
                        help="further pytest arguments")
    parser.set_defaults(func=run)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hvbsd")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))
