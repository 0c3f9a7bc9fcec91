"""``hvbsd_vssd``: options, state file, pidfile, signals and the one poll loop.

Single-threaded on purpose: UFSSUSPEND fails with EDEADLK in a process with
more than one thread. Timeouts (watchdog, short frames) come from the poll
timeout, signals wake the poll through a pipe, hooks are child processes.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import stat
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from hvbsd.vss import files, procs, protocol
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
from hvbsd.vss.detach import daemonize, fail_start, pid_alive, report_ready
from hvbsd.vss.hooks import HookDirError, Hooks
from hvbsd.vss.log import FileSink, Log, Sink, StderrSink, SyslogSink, clean
from hvbsd.vss.options import seconds_up_to
from hvbsd.vss.platform import FreeBSDPlatform, Platform, PlatformError, SimPlatform
from hvbsd.vss.policy import CHOICES, SCOPE_APP, SCOPE_FS, Deadline, Policy, Settings
from hvbsd.vss.protocol import Message, Op, Status
from hvbsd.vss.state import STATE_VERSION, State, StateError, dump_state, load_state

PROG = "hvbsd_vssd"
HOOKS_DIR = "/usr/local/etc/hvbsd/vss.d"
STATE_FILE = "/var/run/hvbsd_vssd.state"
PIDFILE = "/var/run/hvbsd_vssd.pid"
#: the simulated kernel's filesystem service (hvbsd.sim), used when --device is a socket
SIM_PLATFORM_PATH = "/var/run/hvbsd-sim/fs.sock"
SIM_KERNEL_DIR_ENV = "HVBSD_SIM_KERNEL_DIR"

EX_OK = 0
EX_USAGE = 2  # a bad option or a path the daemon refuses to use
EX_UNAVAILABLE = 69  # sysexits: the device is held by another daemon
EX_SOFTWARE = 70  # sysexits: an error of the daemon's own
EX_OSERR = 71  # sysexits: the device or the platform cannot be used

STATUS_THAWED = 0
STATUS_FROZEN = 1
STATUS_UNKNOWN = 2

#: how long after its deadline a hook's process group left by a killed daemon is killed
ORPHAN_WINDOW_SECONDS = 600.0


_seconds = seconds_up_to(86400)

#: the hv_vss driver's one timer per request (hv_snapshot.c, TIMEOUT_LIMIT)
DRIVER_TIMEOUT = 15.0
#: the default request budget: a 3 s margin inside the driver's timer
BUDGET = 12.0


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < DRIVER_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be more than 0 and less than the driver's {DRIVER_TIMEOUT:g} s")
    return value


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
    parser.add_argument("--budget", type=_budget, default=BUDGET, metavar="SECONDS",
                        help=f"answer each request within this, counted from when the driver"
                        f" queued it; less than {DRIVER_TIMEOUT:g} (default {BUDGET:g})")
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


def read_state(path: str) -> Optional[State]:
    """The state file's content, or None when it is missing or cannot be used."""
    try:
        return load_state(path)
    except StateError:
        return None


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def print_status(path: str) -> int:
    """``--status``: 0 thawed, 1 frozen, 2 whenever the file cannot be trusted."""
    try:
        state = load_state(path)
    except StateError as exc:
        print(f"{PROG}: state unknown: {clean(str(exc), 300)}")
        return STATUS_UNKNOWN
    running = "running" if pid_alive(state.pid) else "not running"
    print(f"{PROG}: {'frozen' if state.frozen else 'thawed'}")
    print(f"pid: {state.pid if state.pid is not None else '-'} ({running})")
    print(f"updated: {clean(state.updated, 64)}")
    for key, values in (("filesystems", state.filesystems), ("hooks", state.hooks)):
        print(f"{key}: {clean(' '.join(values), 2000) if values else '-'}")
    if state.running is not None:
        print(f"running: hook {state.running.name} {state.running.action}"
              f" (pid {state.running.pid or '-'})")
    for op, result in sorted(state.last.items()):
        verdict = "ok" if result.ok else "FAIL"
        print(clean(f"last {op}: {verdict} at {result.time}: {result.message}", 2000))
    return STATUS_FROZEN if state.frozen else STATUS_THAWED


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
            log, on_state=self.write_state, defer_hook_thaws=True)
        self._last_request: Optional[Tuple[int, float]] = None
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
            files.write_atomically(self.args.state_file, dump_state(state))
        except OSError as exc:
            self.log.error(f"cannot write the state file {self.args.state_file}:"
                           f" {exc.strerror or exc}")

    def record(self, what: str, ok: bool, message: str) -> None:
        self.last[what] = {"ok": ok, "message": message, "time": _stamp()}
        self.write_state()

    def recover(self) -> None:
        """Act on a state file left frozen by a daemon that was killed.

        Runs once this process holds the device (so no other daemon is
        serving): kills the hook process that was under way, then thaws every
        hook the journal lists, in reverse order. The filesystems need
        nothing: the kernel resumed them when the dead daemon's
        /dev/ufssuspend descriptors closed (ffs_suspend.c, ffs_susp_dtor).
        """
        try:
            state = load_state(self.args.state_file)
        except StateError as exc:
            if os.path.lexists(self.args.state_file):
                self.log.warning(
                    f"state file unusable ({exc}): the state is unknown, so no hook is"
                    " thawed; if an application was quiesced, run its hook with thaw")
            return
        self.last.update({op: {"ok": r.ok, "message": r.message, "time": r.time}
                          for op, r in state.last.items()})
        if not state.frozen:
            return
        names = list(state.hooks)
        if state.running is not None and state.running.name not in names:
            names.append(state.running.name)
        self.log.warning(
            f"the previous daemon (pid {state.pid or '-'}) exited while frozen; the kernel"
            " resumed its filesystems when its descriptors closed: "
            f"{', '.join(state.filesystems) or 'none'}; thawing its hooks: "
            f"{', '.join(names) or 'none'}")
        problems = []
        running = state.running
        # a hook outliving its daemon must not finish a freeze after our thaw; the
        # window keeps a reused process group id from being hit much later
        if (running is not None and running.pid is not None
                and time.time() < running.deadline + ORPHAN_WINDOW_SECONDS
                and procs.kill_group(running.pid)):
            self.log.warning(f"killed the process group {running.pid} of hook"
                                 f" {running.name} {running.action}, left running")
        if names:
            try:
                known = set(self.hooks.discover())
            except HookDirError as exc:
                known = set()
                problems.append(str(exc))
            for name in reversed(names):
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
        self.warn_about_own_files()
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
            self.hooks.reaper.reap()  # orphans of hooks, adopted as their reaper
        return self._shutdown(status)

    def warn_about_own_files(self) -> None:
        """Say so when a file this process holds open for writing is on a
        filesystem a FREEZE would suspend: the kernel would refuse it."""
        try:
            plan = self.policy.plan()
        except PlatformError:
            return
        for fd, path, mount in self.policy.writable_files_on(plan.suspend):
            what = {1: "standard output", 2: "standard error"}.get(fd, f"descriptor {fd}")
            self.log.warning(
                f"{what} ({path}) is open for writing on {mount.mount_on}, which FREEZE"
                " suspends: the kernel refuses that with EDEADLK, so every backup would"
                f" fail; send it elsewhere (run without -n, or redirect it off"
                f" {mount.mount_on}) or --exclude {mount.mount_on}")

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
        deadline = self._deadline(item)
        if item.op == Op.CHECK:
            outcome = self.policy.check(scope)
        elif item.op == Op.FREEZE:
            outcome = self.policy.freeze(scope, deadline)
        elif item.op == Op.THAW:
            outcome = self.policy.thaw(scope, deadline=deadline)
        else:
            self.log.error(f"{channel.path}: unknown {item.op_name} (msgid {item.msgid}):"
                           " answering FAIL")
            self._answer(channel, item.reply(Status.FAIL))
            return
        name = item.op_name if scope == SCOPE_FS else f"APP {item.op_name}"
        (self.log.info if outcome.ok else self.log.error)(
            f"{name}: {'ok' if outcome.ok else 'FAIL'}: {outcome.message}")
        if deadline.spent:
            self.log.warning(f"{name}: answered {-deadline.left():.1f} s after the request"
                             f" budget of {self.args.budget:g} s")
        # answer first: the kernel's 15 s budget runs, the state file can wait a moment
        self._answer(channel, item.reply(Status.SUCCESS if outcome.ok else Status.FAIL))
        self.record(name, outcome.ok, outcome.message)
        if (item.op == Op.FREEZE and scope == SCOPE_FS and not outcome.ok
                and not self.policy.settings.hooks_on_fs and self.policy.frozen_hooks):
            # the driver never tells the app to thaw after a failed daemon FREEZE
            # (hv_snapshot.c, hv_vss_daemon_acked answers the host and stops there)
            undo = self.policy.thaw(SCOPE_APP, "filesystem FREEZE failed")
            (self.log.info if undo.ok else self.log.error)(f"APP THAW: {undo.message}")
            self.record("APP THAW", undo.ok, undo.message)
        finished = self.policy.finish()
        if finished is not None:
            (self.log.info if finished.ok else self.log.error)(finished.message)
            self.record(f"{name} HOOKS", finished.ok, finished.message)

    def _deadline(self, item: Message) -> Deadline:
        """The request's budget runs from when it was read, or from when it was
        read on the other channel (the same transaction: the driver passes one
        request, one msgid, from app to daemon or back), or from its arrival in
        the driver: the msgid is the kernel's nanotime() then (hv_snapshot.c,
        hv_vss_init_req), when that is plausible."""
        now = time.monotonic()
        start = now
        if self._last_request is not None and self._last_request[0] == item.msgid:
            start = min(start, self._last_request[1])
        waited = (time.time_ns() - item.msgid) / 1e9
        if 0 <= waited <= DRIVER_TIMEOUT:
            start = min(start, now - waited)
        self._last_request = (item.msgid, start)
        return Deadline(start + self.args.budget)

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
    log = Log(make_sink(args), debug=args.debug)
    for path in (args.state_file, args.pidfile):
        try:
            files.check_target(path)
        except OSError as exc:
            return _fail(log, str(exc.strerror or exc), EX_USAGE)
    # detach first: the driver records the process that opens the device as the
    # one to signal on detach (hv_snapshot.c, hv_vss_dev_open: proc_task = curproc)
    ready = daemonize(PROG) if not args.foreground else -1
    try:
        platform = make_platform(args)
        channels = [open_channel(args.device, "fs")]
        if args.app_device:
            channels.append(open_channel(args.app_device, "app"))
    except ChannelBusy as exc:
        return _fail(log, str(exc), EX_UNAVAILABLE, ready)
    except (ChannelError, PlatformError) as exc:
        return _fail(log, str(exc), EX_OSERR, ready)
    except Exception as exc:  # the launcher must hear of it, not exit 0
        return _fail(log, f"cannot start: {type(exc).__name__}: {exc}", EX_SOFTWARE, ready)
    # holding the device, this is the only daemon: the state file is ours now
    for path in (args.state_file, args.pidfile):
        for stale in files.remove_stale_temporaries(path):
            log.info(f"removed {stale}, left by a daemon that was killed")
    daemon = Daemon(args, log, platform, Hooks(args.hooks_dir, args.hook_timeout,
                                                 reaper=procs.Reaper()))
    try:
        files.write_atomically(args.pidfile, f"{os.getpid()}\n".encode())
    except OSError as exc:
        log.error(f"cannot write the pidfile {args.pidfile}: {exc.strerror or exc}")
    report_ready(ready)
    daemon.recover()
    try:
        return daemon.serve(channels)
    finally:
        try:
            os.unlink(args.pidfile)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.error(f"cannot remove the pidfile {args.pidfile}: {exc.strerror}")


def _fail(log: Log, message: str, status: int, ready: int = -1) -> int:
    return fail_start(log, PROG, message, status, ready)
