"""``hvbsd_vssd``: options, state file, pidfile, signals and the one poll loop.

Single-threaded on purpose: UFSSUSPEND fails with EDEADLK in a process with
more than one thread. Timeouts (watchdog, short frames) come from the poll
timeout, signals wake the poll through a pipe, hooks are child processes.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import signal
import stat
import sys
import time
from typing import Dict, List, Optional, Sequence

from hvbsd.vss import protocol
from hvbsd.vss.channel import (
    APP_DEVICE,
    FS_DEVICE,
    HANGUP_EVENTS,
    READ_EVENTS,
    Channel,
    ChannelBusy,
    ChannelClosed,
    ChannelError,
    ShortFrame,
    open_channel,
)
from hvbsd.vss.hooks import HookDirError, Hooks
from hvbsd.vss.log import FileSink, Log, Sink, StderrSink, SyslogSink
from hvbsd.vss.options import seconds_up_to
from hvbsd.vss.platform import FreeBSDPlatform, Platform, PlatformError, SimPlatform
from hvbsd.vss.policy import CHOICES, SCOPE_APP, SCOPE_FS, Policy, Settings
from hvbsd.vss.protocol import Message, Op, Status

PROG = "hvbsd_vssd"
HOOKS_DIR = "/usr/local/etc/hvbsd/vss.d"
STATE_FILE = "/var/run/hvbsd_vssd.state"
PIDFILE = "/var/run/hvbsd_vssd.pid"
#: the simulated kernel's filesystem service (hvbsd.sim), used when --device is a socket
SIM_PLATFORM_PATH = "/var/run/hvbsd-sim/fs.sock"
SIM_KERNEL_DIR_ENV = "HVBSD_SIM_KERNEL_DIR"
STATE_VERSION = 1

EX_OK = 0
EX_UNAVAILABLE = 69  # sysexits: the device is held by another daemon
EX_OSERR = 71  # sysexits: the device or the platform cannot be used

STATUS_THAWED = 0
STATUS_FROZEN = 1
STATUS_UNKNOWN = 2


_seconds = seconds_up_to(86400)


def _glob(text: str) -> str:
    if not text or not (text.startswith("/") or text[0] in "*?["):
        raise argparse.ArgumentTypeError(
            f"{text!r} never matches a mount point: start it with / (e.g. /var/tmp*)")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Answer Hyper-V VSS backup requests: freeze UFS, sync ZFS, run hooks.")
    parser.add_argument("-n", dest="foreground", action="store_true",
                        help="stay in the foreground and log to stderr")
    parser.add_argument("-d", dest="debug", action="store_true", help="log debug messages")
    parser.add_argument("--device", default=FS_DEVICE, metavar="PATH",
                        help="filesystem VSS device, or a simulator's socket"
                        f" (default {FS_DEVICE})")
    parser.add_argument("--app-device", metavar="PATH",
                        help=f"also serve the application channel (e.g. {APP_DEVICE}) and"
                        " bind the hooks to it")
    parser.add_argument("--sim-platform", metavar="PATH",
                        help="use the simulator's filesystem service at PATH (default when"
                        " --device is a socket: /var/run/hvbsd-sim/fs.sock)")
    parser.add_argument("--zfs", choices=CHOICES, default="sync",
                        help="writable ZFS: zpool sync (default), veto the backup, or ignore")
    parser.add_argument("--other-fs", choices=CHOICES, default="sync",
                        help="other writable filesystems: sync (default), veto, ignore")
    parser.add_argument("--exclude", action="append", type=_glob, default=[], metavar="GLOB",
                        help="leave mount points matching GLOB alone (repeatable)")
    parser.add_argument("--freeze-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                        help="thaw by itself when no THAW arrives within this (default 60)")
    parser.add_argument("--hook-timeout", type=_seconds, default=5.0, metavar="SECONDS",
                        help="kill a hook that runs longer (default 5)")
    parser.add_argument("--hooks-dir", default=HOOKS_DIR, metavar="DIR",
                        help=f"hook directory (default {HOOKS_DIR})")
    parser.add_argument("--state-file", default=STATE_FILE, metavar="PATH",
                        help=f"state file (default {STATE_FILE})")
    parser.add_argument("--pidfile", default=PIDFILE, metavar="PATH",
                        help=f"pidfile (default {PIDFILE})")
    parser.add_argument("--log-file", metavar="PATH",
                        help="append syslog-style lines to PATH instead of syslog or stderr")
    parser.add_argument("--status", action="store_true",
                        help="print the state file and exit 0 thawed, 1 frozen, 2 unknown")
    return parser


# state file


def write_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def read_state(path: str) -> Optional[Dict[str, object]]:
    """The state file's content, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as stream:
            state = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("frozen"), bool):
        return None
    return state


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def print_status(path: str) -> int:
    state = read_state(path)
    if state is None:
        print(f"{PROG}: state unknown: {path} is missing or unreadable")
        return STATUS_UNKNOWN
    pid = state.get("pid")
    running = "running" if _pid_alive(pid) else "not running"
    print(f"{PROG}: {'frozen' if state['frozen'] else 'thawed'}")
    print(f"pid: {pid} ({running})")
    print(f"updated: {state.get('updated', '-')}")
    for key in ("filesystems", "hooks"):
        values = state.get(key) or []
        print(f"{key}: {' '.join(map(str, values)) if values else '-'}")  # type: ignore[call-overload]
    last = state.get("last")
    if isinstance(last, dict):
        for op, result in sorted(last.items()):
            if isinstance(result, dict):
                verdict = "ok" if result.get("ok") else "FAIL"
                print(f"last {op}: {verdict} at {result.get('time')}: {result.get('message')}")
    return STATUS_FROZEN if state["frozen"] else STATUS_THAWED


# the daemon


class Daemon:
    def __init__(self, args: argparse.Namespace, log: Log, platform: Platform,
                 hooks: Hooks) -> None:
        self.args = args
        self.log = log
        self.hooks = hooks
        self.channels: List[Channel] = []
        self.last: Dict[str, Dict[str, object]] = {}
        self.policy = Policy(
            platform, hooks,
            Settings(zfs=args.zfs, other_fs=args.other_fs, excludes=tuple(args.exclude),
                     hooks_on_fs=args.app_device is None),
            log, on_state=self.write_state)
        self.stopping: Optional[str] = None
        self._wake_read = -1

    # state

    def write_state(self, snapshot: Optional[Dict[str, object]] = None) -> None:
        if self.policy.filesystems_frozen:
            return  # a write now could block on the suspended filesystem
        state: Dict[str, object] = {"version": STATE_VERSION, "pid": os.getpid(),
                                    "updated": _stamp()}
        state.update(snapshot if snapshot is not None else self.policy.snapshot())
        state["last"] = self.last
        try:
            write_atomically(self.args.state_file,
                             json.dumps(state, indent=1, sort_keys=True).encode() + b"\n")
        except OSError as exc:
            self.log.error(f"cannot write the state file {self.args.state_file}: {exc.strerror}")

    def record(self, what: str, ok: bool, message: str) -> None:
        self.last[what] = {"ok": ok, "message": message, "time": _stamp()}
        self.write_state()

    def recover(self) -> None:
        """Act on a state file left frozen by a daemon that was killed."""
        state = read_state(self.args.state_file)
        if state is None or not state["frozen"]:
            return
        if isinstance(state.get("last"), dict):
            self.last.update(state["last"])  # type: ignore[arg-type]
        filesystems = [str(f) for f in state.get("filesystems") or []]  # type: ignore[union-attr]
        hook_names = [str(h) for h in state.get("hooks") or []]  # type: ignore[union-attr]
        self.log.warning(
            f"the previous daemon (pid {state.get('pid')}) exited while frozen; the kernel"
            " resumed its filesystems when its descriptors closed: "
            f"{', '.join(filesystems) or 'none'}; thawing its hooks: "
            f"{', '.join(hook_names) or 'none'}")
        problems = []
        if hook_names:
            try:
                known = set(self.hooks.discover())
            except HookDirError as exc:
                known = set()
                problems.append(str(exc))
            for name in reversed(hook_names):
                if name not in known:
                    problems.append(f"hook {name} from the state file is not a hook now")
                    continue
                result = self.hooks.run(name, "thaw")
                (self.log.info if result.ok else self.log.error)(result.describe())
                if not result.ok:
                    problems.append(result.describe())
        message = "recovered: " + ("; ".join(problems) if problems else "all thawed")
        self.log.info(message)
        self.record("RECOVERY", not problems, message)

    # serving

    def serve(self, channels: List[Channel]) -> int:
        self.channels = channels
        self._wake_read, wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        by_fd = {}
        for channel in channels:
            poller.register(channel.fileno(), READ_EVENTS)
            by_fd[channel.fileno()] = channel
        self.log.info(f"serving {', '.join(c.path for c in channels)} (pid {os.getpid()})")
        self.write_state()
        status = EX_OK
        while self.stopping is None:
            try:
                ready = poller.poll(self._poll_timeout())
            except InterruptedError:
                ready = []
            for fd, events in ready:
                if fd == self._wake_read:
                    self._drain_wakeups()
                    continue
                channel = by_fd[fd]
                if events & (READ_EVENTS | HANGUP_EVENTS) and not self._pump(channel):
                    poller.unregister(fd)
                    self.stopping = f"the kernel side closed {channel.path}"
            now = time.monotonic()
            for channel in channels:
                for fragment in channel.expire(now):
                    self._handle(channel, fragment)
            self._watchdog(now)
        return self._shutdown(status)

    def _on_signal(self, number: int, frame: object) -> None:
        self.stopping = signal.Signals(number).name

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _poll_timeout(self) -> Optional[int]:
        deadlines = [d for d in (c.deadline() for c in self.channels) if d is not None]
        if self.policy.frozen_at is not None:
            deadlines.append(self.policy.frozen_at + self.args.freeze_timeout)
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _pump(self, channel: Channel) -> bool:
        """Handle what the channel has; False once the kernel side is gone."""
        try:
            received = channel.receive()
        except ChannelClosed:
            return False
        except ChannelError as exc:
            self.log.error(str(exc))
            return False
        for item in received:
            self._handle(channel, item)
        return not channel.closed

    def _handle(self, channel: Channel, item: object) -> None:
        scope = SCOPE_APP if channel.role == "app" else SCOPE_FS
        if isinstance(item, ShortFrame):
            msgid = item.msgid
            self.log.error(f"{channel.path}: short frame of {len(item.data)} bytes"
                           + (f" (msgid {msgid}): answering FAIL" if msgid is not None
                              else ", no msgid: dropped"))
            if msgid is not None:
                op = int.from_bytes(item.data[:4], "little")
                self._answer(channel, protocol.encode(op, Status.FAIL, msgid))
            return
        assert isinstance(item, Message)
        self.log.debug(f"{channel.path}: request {item.op_name} msgid {item.msgid}"
                       f" status {item.status}")
        if item.status != Status.SUCCESS:
            self.log.error(f"{channel.path}: request {item.op_name} arrived with status"
                           f" {item.status} (read error)"
                           + (": answering FAIL" if item.msgid else ", no msgid: dropped"))
            if item.msgid:
                self._answer(channel, item.reply(Status.FAIL))
            return
        if item.op == Op.CHECK:
            outcome = self.policy.check(scope)
        elif item.op == Op.FREEZE:
            outcome = self.policy.freeze(scope)
        elif item.op == Op.THAW:
            outcome = self.policy.thaw(scope)
        else:
            self.log.error(f"{channel.path}: unknown {item.op_name} (msgid {item.msgid}):"
                           " answering FAIL")
            self._answer(channel, item.reply(Status.FAIL))
            return
        name = item.op_name if scope == SCOPE_FS else f"APP {item.op_name}"
        (self.log.info if outcome.ok else self.log.error)(
            f"{name}: {'ok' if outcome.ok else 'FAIL'}: {outcome.message}")
        # answer first: the kernel's 15 s budget runs, the state file can wait a moment
        self._answer(channel, item.reply(Status.SUCCESS if outcome.ok else Status.FAIL))
        self.record(name, outcome.ok, outcome.message)

    def _answer(self, channel: Channel, frame: bytes) -> None:
        try:
            channel.send(frame)
        except ChannelError as exc:
            self.log.error(f"cannot answer on {channel.path}: {exc}")

    def _watchdog(self, now: float) -> None:
        frozen_at = self.policy.frozen_at
        if frozen_at is None or now < frozen_at + self.args.freeze_timeout:
            return
        outcome = self.policy.thaw_everything("watchdog")
        message = (f"no THAW within {self.args.freeze_timeout:g} s of the FREEZE:"
                   f" {outcome.message}")
        (self.log.warning if outcome.ok else self.log.error)(message)
        self.record("WATCHDOG", outcome.ok, message)

    def _shutdown(self, status: int) -> int:
        reason = self.stopping or "exit"
        if self.policy.anything_frozen:
            outcome = self.policy.thaw_everything(f"{reason} while frozen")
            (self.log.warning if outcome.ok else self.log.error)(outcome.message)
            self.record("SHUTDOWN", outcome.ok, outcome.message)
        self.log.info(f"exiting: {reason}")
        self.write_state()
        for channel in self.channels:
            channel.close()
        return status


def daemonize() -> int:
    """Detach like daemon(3): double fork, setsid, chdir /, stdio on /dev/null.

    Returns a descriptor to close once ready; the original process exits when
    it closes, so the pidfile exists when the caller's command returns.
    """
    ready_read, ready_write = os.pipe()
    if os.fork() > 0:
        os.close(ready_write)
        while os.read(ready_read, 64):
            pass
        os._exit(0)
    os.close(ready_read)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    return ready_write


def make_sink(args: argparse.Namespace) -> Sink:
    if args.log_file:
        return FileSink(args.log_file)
    if args.foreground:
        return StderrSink()
    return SyslogSink()


def make_platform(args: argparse.Namespace) -> Platform:
    """FreeBSD's kernel, or the simulator's filesystem service.

    ``--sim-platform PATH`` names the service. Without it, a ``--device`` that
    is a UNIX socket means a simulated kernel, whose filesystem service sits
    at a fixed place (SIM_PLATFORM_PATH, or $HVBSD_SIM_KERNEL_DIR/fs.sock), so
    a deployed configuration needs no simulation-only flags.
    """
    if args.sim_platform:
        return SimPlatform(args.sim_platform)
    if _is_socket(args.device):
        kernel_dir = os.environ.get(SIM_KERNEL_DIR_ENV)
        return SimPlatform(os.path.join(kernel_dir, "fs.sock") if kernel_dir
                           else SIM_PLATFORM_PATH)
    return FreeBSDPlatform()


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    sys.dont_write_bytecode = True
    args = build_parser().parse_args(argv)
    if args.status:
        return print_status(args.state_file)
    # until detached, problems go to stderr as well as to the chosen sink
    log = Log(make_sink(args), debug=args.debug)
    try:
        platform = make_platform(args)
        channels = [open_channel(args.device, "fs")]
        if args.app_device:
            channels.append(open_channel(args.app_device, "app"))
    except ChannelBusy as exc:
        return _fail(log, str(exc), EX_UNAVAILABLE)
    except (ChannelError, PlatformError) as exc:
        return _fail(log, str(exc), EX_OSERR)
    daemon = Daemon(args, log, platform, Hooks(args.hooks_dir, args.hook_timeout))
    daemon.recover()
    ready = daemonize() if not args.foreground else -1
    try:
        write_atomically(args.pidfile, f"{os.getpid()}\n".encode())
    except OSError as exc:
        log.error(f"cannot write the pidfile {args.pidfile}: {exc.strerror}")
    if ready >= 0:
        os.close(ready)
    try:
        return daemon.serve(channels)
    finally:
        try:
            os.unlink(args.pidfile)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.error(f"cannot remove the pidfile {args.pidfile}: {exc.strerror}")


def _fail(log: Log, message: str, status: int) -> int:
    log.error(message)
    if not isinstance(log.sink, StderrSink):
        sys.stderr.write(f"{PROG}: {message}\n")
    return status
