"""``hvbsd sim host start|stop|status|request GUEST``, ``hvbsd sim backup GUEST`` and
``hvbsd sim kvp GUEST ...``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Callable

from hvbsd.vss.options import seconds_up_to

if TYPE_CHECKING:
    from hvbsd.sim.guest import Guest

BACKUP_EPILOG = """\
The host's backup sequence against the guest's simulated hv_vss driver
(started with 'hvbsd sim host start' if it is not running): HOT_BACKUP
(check), FREEZE, the snapshot, THAW.  During the snapshot a write is tried
through the guest's hvbsd-sim-write (the one writer that honours simulated
UFS suspension; ordinary writes are not intercepted).  Prints JSON: per step
the status the host saw (HV_S_OK, HV_E_FAIL, no reply, not sent) and its
latency in seconds, whether the write blocked during the snapshot and flowed
after the thaw, and the filesystems still frozen at the end.  "consistent"
is true only when every step succeeded and the write was held back for the
whole snapshot (on ZFS, which has no suspension, writes flow: the host saw
success, "vss_ok", but the snapshot is crash-consistent only).  One backup
of a guest at a time: a second one is refused.

exit status: 0 consistent, 1 not consistent, 2 bad input or the guest is in
a backup already, other: the guest cannot be used
"""


_seconds = seconds_up_to(3600)

KVP_EPILOG = """\
The host's side of Hyper-V's KVP exchange with the guest, through its
simulated hv_kvp driver (the simulated host is started if it is not
running; devd's rules then start the guest's KVP daemon):

  get POOL KEY          the value of KEY in POOL (the host reads the guest's
                        pools: guest, auto)
  set POOL KEY VALUE    the host writes KEY (the external pool)
  delete POOL KEY       the host deletes KEY
  enum POOL             every KEY=VALUE of POOL, as the host enumerates it
                        (auto: the guest's FQDN, OS and addresses)
  ip MAC                the addresses the guest reports for the adapter with
                        that MAC (what Hyper-V Manager shows)
  set-ip MAC (dhcp | ADDRESS/PREFIX[;...] [GATEWAY])
                        the host's set-IP request (Hyper-V Replica failover)

POOL: external, guest, auto, auto_external, auto_internal or 0-4.

exit status: 0 the guest answered S_OK, 1 it answered something else,
nothing in time, or the guest cannot be used, 2 bad input
"""
MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
MAX_KVP_WORD = 4096


class _Checked(Exception):
    """The words made a host message: they are valid (raised instead of sending it)."""


class _DryDriver:
    def transact(self, message: bytes, limit: float = 10.0) -> None:
        raise _Checked()


def kvp_usage_problem(words: list[str]) -> str | None:
    """Why ``words`` are not a ``sim kvp`` request (one line), or None."""
    from hvbsd.sim import hyperv_kvp

    for word in words:
        if len(word) > MAX_KVP_WORD:
            return f"a word of {len(word)} characters (at most {MAX_KVP_WORD})"
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            return f"{word.encode('utf-8', 'surrogateescape')[:40]!r} is not UTF-8 text"
        if "\0" in word:
            return "a word contains a NUL character"
    if words and words[0] in ("ip", "set-ip") and len(words) > 1 and not MAC.fullmatch(words[1]):
        return f"{words[1][:40]!r} is not a MAC address (00:15:5d:0a:0b:0c)"
    try:
        status, text = hyperv_kvp.command(_DryDriver(), words,  # type: ignore[arg-type]
                                          mac_to_guid=lambda mac: "0" * 32)
    except _Checked:
        return None
    return text.splitlines()[0] if status == 2 and text else hyperv_kvp.USAGE


def _guarded(verb: str, function: Callable[[argparse.Namespace], int]
             ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from hvbsd.sim.guest import GuestError, require_namespaces

        try:
            require_namespaces()
            return function(args)
        except GuestError as error:
            sys.stderr.write(f"hvbsd sim {verb}: {error}\n")
            return int(error.exit_status)

    return run


def _guest(args: argparse.Namespace) -> Guest:
    from hvbsd.sim.guest import Guest

    return Guest(args.name, args.state_dir)


def _start(args: argparse.Namespace) -> int:
    from hvbsd.sim import host

    pid = host.start(_guest(args), args.vss_timeout)
    print(f"{args.name}: simulated host running (pid {pid})")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from hvbsd.sim import host

    stopped = host.stop(_guest(args))
    print(f"{args.name}: simulated host {'stopped' if stopped else 'was not running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from hvbsd.sim import host

    guest = _guest(args)
    if host.host_pid(guest) is None:
        print(json.dumps({"guest": args.name, "running": False}))
        return 3
    reply = host.call(guest, {"op": "status"})
    reply.pop("ok", None)
    print(json.dumps({"guest": args.name, "running": True, **reply}, indent=1))
    return 0


def _request(args: argparse.Namespace) -> int:
    from hvbsd.sim import host

    guest = _guest(args)
    host.start(guest)
    reply = host.request(guest, args.host_op, args.host_timeout)
    reply.pop("ok", None)
    print(json.dumps(reply))
    return 0 if reply.get("status") == "HV_S_OK" else 1


def _kvp(args: argparse.Namespace) -> int:
    from hvbsd.sim import host

    problem = kvp_usage_problem(args.words)
    if problem is not None:
        sys.stderr.write(f"hvbsd sim kvp: {problem}\n")
        return 2
    guest = _guest(args)
    host.start(guest)
    reply = host.kvp(guest, args.words)
    status = int(reply["status"])
    text = str(reply.get("text", ""))
    if status == 0:
        if text:
            print(text)
        return 0
    sys.stderr.write(f"hvbsd sim kvp: {text.splitlines()[0] if text else 'failed'}\n")
    return status if status in (1, 2) else 1


def _backup(args: argparse.Namespace) -> int:
    from hvbsd.sim import host

    result = host.backup(_guest(args), thaw=not args.no_thaw, host_timeout=args.host_timeout,
                         probe=args.probe, snapshot_seconds=args.snapshot_seconds)
    print(json.dumps(result, indent=1))
    return 0 if result["consistent"] else 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="GUEST")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="directory holding the guests' state (default: $HVBSD_SIM_HOME"
                        " or ~/.local/state/hvbsd/sim)")


def register(sim_sub: argparse._SubParsersAction) -> None:
    host = sim_sub.add_parser(
        "host", help="the simulated Hyper-V host of a guest (VSS driver, filesystems)",
        description="Run the simulated Hyper-V host of a guest in the background: the"
        " kernel side of /dev/hv_fsvss_dev and /dev/hv_appvss_dev and the filesystem"
        " service; its devices appearing runs the guest's devd rules.")
    verbs = host.add_subparsers(dest="host_verb", metavar="VERB")
    verbs.required = True
    start = verbs.add_parser("start", help="start it (devd then starts the VSS daemon)")
    _common(start)
    start.add_argument("--vss-timeout", type=_seconds, default=15.0, metavar="S",
                       help="the driver's timeout per request (default 15, as the kernel)")
    start.set_defaults(func=_guarded("host start", _start))
    stop = verbs.add_parser("stop", help="stop it (the devices go, devd is told)")
    _common(stop)
    stop.set_defaults(func=_guarded("host stop", _stop))
    status = verbs.add_parser("status", help="print its state as JSON (exit 3: not running)")
    _common(status)
    status.set_defaults(func=_guarded("host status", _status))
    request = verbs.add_parser("request", help="send one host VSS request, print the reply")
    _common(request)
    request.add_argument("host_op", metavar="OP",
                         choices=("HOT_BACKUP", "FREEZE", "THAW", "GET_DM_INFO", "CREATE",
                                  "DELETE", "BU_COMPLETE", "AUTO_RECOVER"))
    request.add_argument("--host-timeout", type=_seconds, default=30.0, metavar="S",
                         help="how long the host waits for the reply (default 30)")
    request.set_defaults(func=_guarded("host request", _request))

    kvp = sim_sub.add_parser(
        "kvp", help="the host's KVP requests to a guest (its addresses, pools, set-IP)",
        description="Send the Hyper-V host's KVP requests to GUEST through its simulated"
        " hv_kvp driver and print the guest's answer.",
        epilog=KVP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(kvp)
    kvp.add_argument("words", nargs=argparse.REMAINDER, metavar="VERB ...",
                     help="get|set|delete|enum|ip|set-ip and their arguments")
    kvp.set_defaults(func=_guarded("kvp", _kvp))

    backup = sim_sub.add_parser(
        "backup", help="play the host's VSS backup of a guest, print what the host saw",
        description="Play a Hyper-V host's application-consistent backup of GUEST.",
        epilog=BACKUP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(backup)
    backup.add_argument("--no-thaw", action="store_true",
                        help="never send THAW (the daemon's watchdog must thaw)")
    backup.add_argument("--host-timeout", type=_seconds, default=30.0, metavar="S",
                        help="how long the host waits for each reply (default 30)")
    backup.add_argument("--probe", default="/var/db/hvbsd-sim-backup.probe", metavar="PATH",
                        help="guest file the write during the snapshot appends to")
    backup.add_argument("--snapshot-seconds", type=_seconds, default=0.5, metavar="S",
                        help="how long the snapshot takes (default 0.5)")
    backup.set_defaults(func=_guarded("backup", _backup))
