"""``hvbsd sim vf attach|detach``, ``hvbsd sim migrate``, ``hvbsd sim nic add``.

The same parsers serve the FreeBSD-box personality (``python3 -m
hvbsd.sim.box``), where there is no GUEST argument: the box is the guest.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from hvbsd.sim.hyperv_nic import QUOTING, NicError, Result

# Builds the personality for parsed arguments (a simulated guest, or the box itself).
Target = Callable[[argparse.Namespace], Any]

EPILOG = """\
Events are derived from the kernel's state as the kernel would send them
(IFNET ATTACH/DETACH, ETHERNET IFATTACH, HYPERV_NIC_VF VF_UP/VF_DOWN, IFNET
LINK_UP/LINK_DOWN) and dispatched one at a time through the guest's
installed devd rules; each is appended to STATE/events.log as a JSON line.

exit status: 0 done, 1 the scenario did not complete (e.g. the VF was never
brought up) or the guest failed, 2 bad input
"""


def _common(parser: argparse.ArgumentParser, with_guest: bool) -> None:
    if with_guest:
        parser.add_argument("guest", metavar="GUEST")
        parser.add_argument("--state-dir", metavar="DIR",
                            help="directory holding the guests' state (default: $HVBSD_SIM_HOME)")
    parser.add_argument("--quoting", choices=QUOTING, default="quoted",
                        help="how devd puts values into actions: quoted (devd 14.x, default) "
                        "or raw (older devd)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", type=float, metavar="SECONDS",
                        help="how long to wait for the VF to be brought up "
                        "(default: hyperv_vf_delay from rc.conf + 5)")


def _print(result: Result, as_json: bool) -> int:
    if as_json:
        json.dump(result.as_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(result.readable())
    return 0 if result.ok else 1


def _runner(target: Target, scenario: Callable[[Any, argparse.Namespace], Result],
            label: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return _print(scenario(target(args), args), args.json)
        except NicError as error:
            sys.stderr.write(f"hvbsd sim {label}: {error}\n")
            return error.exit_status
        except Exception as error:  # guest errors carry their own status
            status = getattr(error, "exit_status", None)
            if status is None:
                raise
            sys.stderr.write(f"hvbsd sim {label}: {error}\n")
            return int(status)

    return run


def add_verbs(sub: argparse._SubParsersAction, target: Target, with_guest: bool) -> None:
    """Add ``vf``, ``migrate`` and ``nic`` to a subparsers object."""
    from hvbsd.sim import hyperv_nic as nic

    vf = sub.add_parser("vf", help="hot-plug a VF (SR-IOV) on an hn(4) NIC",
                        description="Attach, detach or move (migrate) the VF of an hn(4) NIC.",
                        epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    vf_verbs = vf.add_subparsers(dest="vf_verb", metavar="VERB")
    vf_verbs.required = True
    attach = vf_verbs.add_parser("attach", help="a VF appears with the hn's MAC address")
    _common(attach, with_guest)
    attach.add_argument("hn", metavar="HN")
    attach.add_argument("--vf", metavar="NAME",
                        help="the VF's name: mceN (mlx5en), mlxenN (mlx4en) or manaN (mana) "
                        "(default: the first free mceN)")
    _wait(attach)
    attach.set_defaults(func=_runner(
        target, lambda n, a: nic.vf_attach(n, a.hn, a.vf, quoting=a.quoting, wait=a.wait),
        "vf attach"))
    detach = vf_verbs.add_parser("detach", help="the hn's VF is hot-removed")
    _common(detach, with_guest)
    detach.add_argument("hn", metavar="HN")
    detach.set_defaults(func=_runner(
        target, lambda n, a: nic.vf_detach(n, a.hn, quoting=a.quoting), "vf detach"))
    _migrate_parser(vf_verbs.add_parser(
        "move", help="the same as migrate: the VF goes, one of the next NIC family comes",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter),
        target, with_guest, "vf move")

    _migrate_parser(sub.add_parser(
        "migrate", help="live migration: the VF goes, another driver's VF comes",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter),
        target, with_guest, "migrate")

    nics = sub.add_parser("nic", help="add a synthetic NIC (hn)", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    nic_verbs = nics.add_subparsers(dest="nic_verb", metavar="VERB")
    nic_verbs.required = True
    add = nic_verbs.add_parser("add", help="a new hn(4) NIC appears")
    _common(add, with_guest)
    add.set_defaults(func=_runner(target, lambda n, a: nic.nic_add(n, quoting=a.quoting),
                                  "nic add"))


def _migrate_parser(move: argparse.ArgumentParser, target: Target, with_guest: bool,
                    label: str) -> None:
    from hvbsd.sim import hyperv_nic as nic

    families = ", ".join(f"{old} -> {new}" for old, new in nic.MIGRATES_TO.items())
    _common(move, with_guest)
    move.add_argument("hn", metavar="HN")
    move.add_argument("--vf", metavar="NAME",
                      help="the new VF's name, of any driver: mce0, mlxen0, mana0 (default: "
                      f"the first free unit of the next NIC family, {families})")
    _wait(move)
    move.set_defaults(func=_runner(
        target, lambda n, a: nic.migrate(n, a.hn, a.vf, quoting=a.quoting, wait=a.wait), label))


def _guest_target(args: argparse.Namespace) -> Any:
    from hvbsd.sim.guest import Guest, require_namespaces
    from hvbsd.sim.hyperv_nic import GuestNics

    require_namespaces()
    return GuestNics(Guest(args.guest, args.state_dir))


def register(sim_sub: argparse._SubParsersAction) -> None:
    """``SIM_VERBS`` entry: vf, migrate and nic under ``hvbsd sim``."""
    add_verbs(sim_sub, _guest_target, with_guest=True)
