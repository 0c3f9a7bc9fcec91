"""``python3 -m hvbsd.sim.box setup|vf|migrate|nic ...`` inside a FreeBSD box."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from hvbsd.sim.box import BoxNics
from hvbsd.sim.hyperv_nic import NicError
from hvbsd.sim.hyperv_nic_cli import add_verbs


def _target(args: argparse.Namespace) -> Any:
    return BoxNics(args.state)


def _setup(args: argparse.Namespace) -> int:
    try:
        created = BoxNics(args.state).setup(args.nics)
    except NicError as error:
        sys.stderr.write(f"hvbsd-box setup: {error}\n")
        return error.exit_status
    print("created: " + " ".join(created) if created else "unchanged")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hvbsd-box",
        description="The simulated Hyper-V NICs of this FreeBSD box (hvbsd's lab).")
    parser.add_argument("--state", metavar="DIR", help="state directory (/var/run/hvbsd-box)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    setup = sub.add_parser("setup", help="bridge, host jail and hn NICs (idempotent)")
    setup.add_argument("--nics", type=int, default=1, help="number of hn NICs (default 1)")
    setup.set_defaults(func=_setup)
    add_verbs(sub, _target, with_guest=False)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
