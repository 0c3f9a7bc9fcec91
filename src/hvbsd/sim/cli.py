"""``hvbsd sim ...``: simulated guests (and, later, the simulated Hyper-V host).

``register(subparsers)`` adds ``sim`` with one sub-tree per noun: ``guest``
now; the host scenarios (``backup``, ``vf``, ``migrate``) add theirs to the
same ``sim`` parser through ``SIM_VERBS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from hvbsd.sim.host_cli import register as register_host_verbs
from hvbsd.sim.hyperv_nic_cli import register as register_nic_verbs

GuestCommand = Callable[[argparse.Namespace], int]

GUEST_EPILOG = """\
A guest is a Linux user + mount + PID namespace held by one process; its /etc,
/usr, /var, /boot and /root are overlays whose upper layers live in
STATE_DIR/NAME, so nothing written inside reaches the host.  Root is not
needed where the kernel gives ordinary users user namespaces
(kernel.unprivileged_userns_clone=1 or no such sysctl, and
user.max_user_namespaces > 0); the Python running hvbsd must be readable by
that user.  Without namespaces, use the vagrant provider instead.

Ansible:   ansible_connection=hvbsd_sim (host name = guest name;
           ansible_hvbsd_sim_state_dir=DIR or $HVBSD_SIM_HOME)
testinfra: pytest tests/infra --hosts='hvbsd-sim://NAME?state_dir=DIR'

exit status: 0 success, 1 guest error (exec: 125, else the command's status),
2 bad input, 69 namespaces unavailable
"""


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="directory holding the guests' state (default: $HVBSD_SIM_HOME or "
        "~/.local/state/hvbsd/sim)",
    )


def _guarded(function: GuestCommand) -> GuestCommand:
    """Turn a GuestError into one line on stderr and its exit status."""

    def run(args: argparse.Namespace) -> int:
        from hvbsd.sim.guest import GuestError, check_release, require_namespaces

        try:
            if getattr(args, "release", None) is not None:
                check_release(args.release)  # a bad value is named before anything else
            require_namespaces()
            return function(args)
        except GuestError as error:
            sys.stderr.write(f"hvbsd sim guest {args.guest_verb}: {error}\n")
            status: int = error.exit_status
            if args.guest_verb == "exec" and status == 1:
                return 125  # like env(1)/chroot(8): not the command's own status
            return status

    return run


@_guarded
def _create(args: argparse.Namespace) -> int:
    from hvbsd.sim.guest import Guest

    guest = Guest.create(
        args.name,
        args.state_dir,
        preset=args.preset,
        nics=args.nics,
        start=not args.no_start,
        release=args.release,
    )
    print(f"{guest.name}: {guest.status}, FreeBSD {guest.release.name} ({guest.state_dir})")
    return 0


@_guarded
def _start(args: argparse.Namespace) -> int:
    from hvbsd.sim.guest import Guest

    Guest(args.name, args.state_dir).start()
    return 0


@_guarded
def _stop(args: argparse.Namespace) -> int:
    from hvbsd.sim.guest import Guest

    Guest(args.name, args.state_dir).stop()
    return 0


@_guarded
def _destroy(args: argparse.Namespace) -> int:
    from hvbsd.sim.guest import Guest

    Guest(args.name, args.state_dir).destroy()
    return 0


@_guarded
def _exec(args: argparse.Namespace) -> int:
    from hvbsd.sim.guest import GUEST_ENVIRONMENT, Guest, InvalidInput

    argv = list(args.argv)
    # REMAINDER swallows options given after NAME; take --state-dir back from it.
    while argv and argv[0].startswith("--state-dir"):
        option = argv.pop(0)
        if "=" in option:
            args.state_dir = option.split("=", 1)[1]
        elif argv:
            args.state_dir = argv.pop(0)
        else:
            raise InvalidInput("exec: --state-dir needs a directory")
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise InvalidInput("exec: no command given (hvbsd sim guest exec NAME -- CMD ...)")
    command = Guest(args.name, args.state_dir).command(argv)
    sys.stdout.flush()
    # Replace this process: signals, the terminal and the exit status pass straight through.
    os.execve(command[0], command, dict(GUEST_ENVIRONMENT))
    return 0  # pragma: no cover - execve does not return


@_guarded
def _list(args: argparse.Namespace) -> int:
    from hvbsd.sim.guest import default_root, list_guests

    guests = list_guests(args.state_dir)
    if not guests:
        root = args.state_dir or default_root()
        sys.stderr.write(f"no guests in {root}\n")
        return 0
    width = max(len(g.name) for g in guests)
    print(f"{'NAME':<{width}}  {'STATUS':<8}  {'PID':>7}  STATE")
    for guest in guests:
        status = guest.status
        pid = guest.pid
        print(f"{guest.name:<{width}}  {status:<8}  {pid or '-':>7}  {guest.state_dir}")
    return 0


def _register_guest(sim_sub: argparse._SubParsersAction) -> None:
    from hvbsd import releases

    guest = sim_sub.add_parser(
        "guest",
        help="simulated FreeBSD guests (Linux namespaces)",
        description="Create, run and remove simulated FreeBSD guests.",
        epilog=GUEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = guest.add_subparsers(dest="guest_verb", metavar="VERB")
    verbs.required = True

    create = verbs.add_parser("create", help="create a guest and start it")
    create.add_argument("name", metavar="NAME")
    _add_state_dir(create)
    create.add_argument("--preset", choices=("ufs", "zfs", "mixed"), default="ufs",
                        help="file systems of the simulated kernel (default: ufs)")
    create.add_argument("--nics", type=int, default=1, help="number of hn(4) NICs (default: 1)")
    create.add_argument("--no-start", action="store_true", help="create only")
    create.add_argument(
        "--release",
        metavar="R",
        default=None,
        help=f"FreeBSD release to simulate, one of {', '.join(releases.names())} "
        f"(default: {releases.default().name})",
    )
    create.set_defaults(func=_create)

    for verb, function, text in (
        ("start", _start, "start a stopped guest"),
        ("stop", _stop, "stop a guest, keeping its state"),
        ("destroy", _destroy, "stop a guest and remove all of its state"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("name", metavar="NAME")
        _add_state_dir(parser)
        parser.set_defaults(func=function)

    run = verbs.add_parser("exec", help="run a command inside a guest as root")
    run.add_argument("name", metavar="NAME")
    _add_state_dir(run)
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    run.set_defaults(func=_exec)

    listing = verbs.add_parser("list", help="list guests and their status")
    _add_state_dir(listing)
    listing.set_defaults(func=_list)


# Each entry adds one noun under `hvbsd sim`; the host simulation appends its own.
# guest ...; host ... and backup (VSS); vf attach|detach, migrate, nic add (hn + VF).
SIM_VERBS: list[Callable[[argparse._SubParsersAction], None]] = [
    _register_guest,
    register_host_verbs,
    register_nic_verbs,
]


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser(
        "sim",
        help="simulated FreeBSD guests and Hyper-V host",
        description="Simulated FreeBSD guests on Linux and the simulated Hyper-V host.",
    )
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="NOUN")
    sim_sub.required = True
    for add in SIM_VERBS:
        add(sim_sub)
