"""``hvbsd_kvpd``: options, pidfile, status file, signals and the one poll loop.

The loop follows the stock daemon's (``hv_kvp_daemon.c``, ``main``): open
``/dev/hv_kvp_dev``, register (a zeroed message with ``HV_KVP_OP_REGISTER``),
then for each POLLIN read one message, answer it, write the answer back. The
driver gives the daemon 5 s per request and hands out one at a time
(``hv_kvp_process_request``), so answers are computed inline.

Single instance: the pidfile is locked (``lockf``) for the daemon's life and
the driver lets one process open the device; a second daemon finds either
taken and exits 69 (EX_UNAVAILABLE) without touching anything.

A read that is not exactly one message is logged and dropped, as the stock
daemon does (the driver cannot produce one; the simulator can). Every other
request gets an answer (NOT_SUPPORTED for unknown operations).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from hvbsd.kvp import protocol, rcconf
from hvbsd.kvp.channel import (
    DEVICE,
    Channel,
    ChannelBusy,
    ChannelClosed,
    ChannelError,
    open_channel,
)
from hvbsd.kvp.platform import RESOLV_CONF, Platform
from hvbsd.kvp.policy import LOOKUPS, Policy
from hvbsd.kvp.pool import POOL_DIR, PoolError, Pools
from hvbsd.vss import files
from hvbsd.vss.detach import daemonize, fail_start, pid_alive, report_ready
from hvbsd.vss.log import FileSink, Log, Sink, StderrSink, SyslogSink, clean

PROG = "hvbsd_kvpd"
PIDFILE = "/var/run/hvbsd_kvpd.pid"
STATE_FILE = "/var/run/hvbsd_kvpd.state"
STATE_LIMIT = 64 * 1024

EX_OK = 0
EX_USAGE = 2
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_OSERR = 71

STATUS_RUNNING = 0
STATUS_NOT_RUNNING = 1
STATUS_UNKNOWN = 2
#: the apply command must finish inside the driver's 5 s for the host to hear the result
APPLY_SECONDS = 3.0
#: how long the status file may lag behind the requests answered
STATE_SECONDS = 1.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Answer Hyper-V KVP requests; tell the host the lagg's"
        " addresses for an hn's adapter.")
    parser.add_argument("-n", dest="foreground", action="store_true",
                        help="stay in the foreground and log to stderr")
    parser.add_argument("-d", dest="debug", action="store_true", help="log debug messages")
    parser.add_argument("--device", default=DEVICE, metavar="PATH",
                        help=f"the KVP device, or a simulator's socket (default {DEVICE})")
    parser.add_argument("--pool-dir", default=POOL_DIR, metavar="DIR",
                        help=f"the pool files' directory (default {POOL_DIR})")
    parser.add_argument("--rc-conf", default=rcconf.RC_CONF, metavar="PATH",
                        help=f"rc.conf with hvbsd's managed block (default {rcconf.RC_CONF})")
    parser.add_argument("--resolv-conf", default=RESOLV_CONF, metavar="PATH",
                        help=f"where DNS servers are read (default {RESOLV_CONF})")
    parser.add_argument("--lookup", choices=LOOKUPS, default="hvbsd",
                        help="hvbsd: an hn's adapter reports its lagg's addresses (default);"
                        " stock: the stock daemon's first-MAC, name-prefix answer")
    parser.add_argument("--set-ip", choices=("managed", "off"), default="managed",
                        help="the host's set-IP request: applied to hvbsd's managed rc.conf"
                        " block (default) or always refused")
    parser.add_argument("--apply-command", metavar="COMMAND",
                        help="run after a set-IP request changed rc.conf, with the changed"
                        " interface (the lagg or the hn) appended, e.g."
                        " '/etc/rc.d/netif restart'")
    parser.add_argument("--pidfile", default=PIDFILE, metavar="PATH",
                        help=f"pidfile, locked while the daemon runs (default {PIDFILE})")
    parser.add_argument("--state-file", default=STATE_FILE, metavar="PATH",
                        help=f"status file for --status (default {STATE_FILE})")
    parser.add_argument("--log-file", metavar="PATH",
                        help="append syslog-style lines to PATH instead of syslog")
    parser.add_argument("--status", action="store_true",
                        help="print the running daemon's status and exit (0 running,"
                        " 1 not running, 2 unknown)")
    return parser


# -- the status file ---------------------------------------------------------------------


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_state(data: bytes) -> Dict[str, Any]:
    """The status file's content, strictly: ValueError names what is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ValueError("not a status file of this daemon (version 1)")
    pid, counts, last = raw.get("pid"), raw.get("counts", {}), raw.get("last", {})
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise ValueError("pid is not a number")
    if not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in counts.items()):
        raise ValueError("counts is not a table of numbers")
    if not isinstance(last, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in last.items()):
        raise ValueError("last is not a table")
    for key in ("started", "updated", "device", "lookup"):
        if not isinstance(raw.get(key, ""), str):
            raise ValueError(f"{key} is not text")
    return raw


def print_status(path: str) -> int:
    try:
        state = parse_state(files.read_bounded(path, STATE_LIMIT))
    except FileNotFoundError:
        print(f"{PROG}: not running ({path} does not exist)")
        return STATUS_NOT_RUNNING
    except (OSError, ValueError) as exc:
        print(f"{PROG}: status unknown: {path}: {clean(str(exc), 300)}")
        return STATUS_UNKNOWN
    alive = pid_alive(state["pid"])
    print(f"{PROG}: {'running' if alive else 'not running'}")
    print(f"pid: {state['pid']}")
    for key in ("device", "lookup", "started", "updated"):
        print(f"{key}: {clean(str(state.get(key, '-')), 200)}")
    counts = state.get("counts", {})
    print("requests: " + (", ".join(f"{clean(k, 40)} {v}" for k, v in sorted(counts.items()))
                          or "none"))
    for op, result in sorted(state.get("last", {}).items()):
        print(clean(f"last {op}: {result.get('status', '?')} at {result.get('time', '?')}:"
                    f" {result.get('note', '')}", 1000))
    return STATUS_RUNNING if alive else STATUS_NOT_RUNNING


# -- the daemon ----------------------------------------------------------------------------


class Stopper:
    """SIGTERM, SIGINT, SIGHUP: remembered, and the poll woken through a pipe.

    Installed before the device is opened, so a signal at any moment of the
    start ends the daemon cleanly (status 0) instead of by the default action.
    """

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number: int, frame: object) -> None:
        self.reason = signal.Signals(number).name
        with contextlib.suppress(OSError):
            os.write(self.wake_write, b"x")


class Daemon:
    def __init__(self, args: argparse.Namespace, log: Log, policy: Policy,
                 stopper: Optional[Stopper] = None) -> None:
        self.args = args
        self.log = log
        self.policy = policy
        self.counts: Dict[str, int] = {}
        self.last: Dict[str, Dict[str, str]] = {}
        self.started = _stamp()
        self.stopper = stopper or Stopper()
        self._wake_read = self.stopper.wake_read
        self._dirty_since: Optional[float] = None

    @property
    def stopping(self) -> Optional[str]:
        return self.stopper.reason

    def write_state(self) -> None:
        self._dirty_since = None
        state = {"version": 1, "pid": os.getpid(), "device": self.args.device,
                 "lookup": self.args.lookup, "started": self.started, "updated": _stamp(),
                 "counts": self.counts, "last": self.last}
        try:
            files.write_atomically(self.args.state_file,
                                   json.dumps(state, indent=1, sort_keys=True).encode() + b"\n")
        except OSError as exc:
            self.log.warning(f"cannot write {self.args.state_file}: {exc.strerror or exc}")

    def serve(self, channel: Channel) -> int:
        self.write_state()
        poller = select.poll()
        poller.register(channel.fileno(), select.POLLIN | select.POLLPRI)
        poller.register(self._wake_read, select.POLLIN)
        status = EX_OK
        try:
            while self.stopping is None:
                if not channel.pending:
                    timeout = None
                    if self._dirty_since is not None:
                        left = self._dirty_since + STATE_SECONDS - time.monotonic()
                        timeout = max(0, int(left * 1000) + 1)
                    events = poller.poll(timeout)
                    if not events:
                        self.write_state()
                        continue
                    if any(fd == self._wake_read for fd, _ in events):
                        with contextlib.suppress(OSError):
                            os.read(self._wake_read, 64)
                        continue
                self._one(channel)
        except ChannelClosed as exc:
            self.log.error(f"{exc}; exiting")
            status = EX_OSERR
        except ChannelError as exc:
            self.log.error(str(exc))
            status = EX_OSERR
        self.log.info(f"exiting: {self.stopping or 'the device went away'}")
        self.write_state()
        channel.close()
        return status

    def _one(self, channel: Channel) -> None:
        frame = channel.receive()
        if frame is None:
            return
        try:
            message = protocol.decode(frame)
        except protocol.ProtocolError as exc:
            # hv_kvp_daemon.c main: "read len is: %d" and continue
            self.log.warning(f"dropped a read of {len(frame)} bytes: {exc}")
            self._count("malformed")
            return
        started = time.monotonic()
        try:
            reply = self.policy.answer(message)
        except Exception as exc:  # never leave the driver without an answer
            self.log.error(f"{message.op_name}: {type(exc).__name__}: {exc}")
            self.policy.last.status, self.policy.last.note = protocol.Status.E_FAIL, str(exc)
            reply = protocol.answer(protocol.Status.E_FAIL, message.body)
        outcome = self.policy.last
        result = channel.send(reply)
        name = message.op_name
        took = (time.monotonic() - started) * 1000
        text = (f"{name} pool {message.pool}: {protocol.status_name(outcome.status)}"
                f"{': ' + outcome.note if outcome.note else ''} ({took:.1f} ms)")
        if result:
            text += f"; the driver's write returned {os.strerror(result)}"
        if outcome.status in (protocol.Status.S_OK, protocol.Status.S_CONT):
            (self.log.info if message.op in (protocol.Op.SET_IP_INFO,) else self.log.debug)(text)
        else:
            self.log.warning(text)
        self._count(name)
        self.last[name] = {"status": protocol.status_name(outcome.status), "time": _stamp(),
                           "note": clean(outcome.note, 500)}
        # the status file is rewritten at most once a STATE_SECONDS (at once after a
        # failure): a burst of requests costs one write, --status lags by at most that
        if outcome.status not in (protocol.Status.S_OK, protocol.Status.S_CONT):
            self.write_state()
        elif self._dirty_since is None:
            self._dirty_since = time.monotonic()

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def make_sink(args: argparse.Namespace) -> Sink:
    if args.log_file:
        return FileSink(args.log_file, tag=PROG)
    if args.foreground:
        return StderrSink(tag=PROG)
    return SyslogSink(tag=PROG)


def make_applier(command: Optional[str], log: Log) -> Optional[Callable[[rcconf.Change], None]]:
    if not command:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"--apply-command: {exc}") from None
    if not argv or not argv[0].startswith("/"):
        raise ValueError("--apply-command must start with an absolute path")

    def apply(change: rcconf.Change) -> None:
        try:
            completed = subprocess.run([*argv, change.target], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       timeout=APPLY_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{argv[0]} took more than {APPLY_SECONDS:g} s") from None
        except OSError as exc:
            raise RuntimeError(f"{argv[0]}: {exc.strerror}") from None
        if completed.returncode != 0:
            raise RuntimeError(f"{argv[0]} {change.target} exited with status"
                               f" {completed.returncode}: "
                               f"{completed.stderr[-300:].decode(errors='replace')}")
        log.info(f"applied: {' '.join(argv)} {change.target}")

    return apply


def lock_pidfile(path: str) -> Optional[int]:
    """The locked pidfile's descriptor; None when another process holds the lock."""
    files.check_target(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def main(argv: Optional[Sequence[str]] = None) -> int:
    sys.dont_write_bytecode = True
    args = build_parser().parse_args(argv)
    if args.status:
        return print_status(args.state_file)
    log = Log(make_sink(args), debug=args.debug)
    try:
        apply = make_applier(args.apply_command, log)
        for path in (args.state_file, args.pidfile):
            files.check_target(path)
    except (OSError, ValueError) as exc:
        return _fail(log, str(getattr(exc, "strerror", None) or exc), EX_USAGE)
    # detach first: the driver records the opener as the process to kill on detach
    ready = daemonize(PROG) if not args.foreground else -1
    stopper = Stopper()
    try:
        pid_fd = lock_pidfile(args.pidfile)
    except OSError as exc:
        return _fail(log, f"{args.pidfile}: {exc.strerror or exc}", EX_OSERR, ready)
    if pid_fd is None:
        return _fail(log, f"another {PROG} is running (it holds {args.pidfile})",
                     EX_UNAVAILABLE, ready)
    # the lock is ours: so is the pidfile (removed again if the start fails)
    os.ftruncate(pid_fd, 0)
    os.pwrite(pid_fd, f"{os.getpid()}\n".encode(), 0)
    channel: Optional[Channel] = None
    pools: Optional[Pools] = None
    try:
        pools = Pools(args.pool_dir)  # kvp_file_init, before the device is opened
        channel = open_channel(args.device)
        channel.register()
    except ChannelBusy as exc:
        _close(channel, pools, args.pidfile, pid_fd)
        return _fail(log, str(exc), EX_UNAVAILABLE, ready)
    except (ChannelError, PoolError) as exc:
        _close(channel, pools, args.pidfile, pid_fd)
        return _fail(log, str(exc), EX_OSERR, ready)
    except Exception as exc:
        _close(channel, pools, args.pidfile, pid_fd)
        return _fail(log, f"cannot start: {type(exc).__name__}: {exc}", EX_SOFTWARE, ready)
    for stale in files.remove_stale_temporaries(args.state_file):
        log.info(f"removed {stale}, left by a daemon that was killed")
    policy = Policy(pools, Platform(args.rc_conf, args.resolv_conf), lookup=args.lookup,
                    set_ip=args.set_ip == "managed", apply=apply, log=log.warning)
    daemon = Daemon(args, log, policy, stopper)
    log.info(f"registered on {args.device}; pools in {args.pool_dir}; lookup {args.lookup}")
    report_ready(ready)
    try:
        return daemon.serve(channel)
    finally:
        pools.close()
        with contextlib.suppress(OSError):
            os.unlink(args.pidfile)
        os.close(pid_fd)


def _close(channel: Optional[Channel], pools: Optional[Pools], pidfile: str = "",
           pid_fd: int = -1) -> None:
    if pidfile:
        with contextlib.suppress(OSError):
            os.unlink(pidfile)
    if pid_fd >= 0:
        os.close(pid_fd)
    if channel is not None:
        channel.close()
    if pools is not None:
        pools.close()


def _fail(log: Log, message: str, status: int, ready: int = -1) -> int:
    return fail_start(log, PROG, message, status, ready)


__all__: List[str] = ["Daemon", "build_parser", "main", "print_status"]
