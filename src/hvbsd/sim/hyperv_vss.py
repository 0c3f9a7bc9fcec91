"""The guest kernel's ``hv_vss`` driver, simulated, and the filesystems it freezes.

``VssDriver`` is the kernel side of ``/dev/hv_fsvss_dev`` and
``/dev/hv_appvss_dev`` (FreeBSD ``sys/dev/hyperv/utilities/hv_snapshot.c``),
served as UNIX stream sockets carrying the daemon's 64-byte frames (see
:mod:`hvbsd.vss.channel` for the handshake that stands for open(2)). It follows
the driver's rules (FACTS.md 5.3, 5.4):

- one opener per device; a second one gets the busy handshake (EBUSY);
- host ops HOT_BACKUP -> CHECK, FREEZE -> FREEZE, THAW -> THAW; GET_DM_INFO is
  answered by the kernel itself; any other op fails;
- ONE request in flight: a host request arriving while any queue holds one
  is dropped without a reply;
- CHECK and FREEZE go to the application channel first (if an app is
  registered), then to the filesystem daemon; THAW the other way round. A
  failure at the first stage answers HV_E_FAIL and the second is never asked;
- one timer per request, armed when it is queued and never re-armed at the
  hand-off; expiry answers HV_E_FAIL and tells the daemon nothing (a late
  answer is dropped as its msgid is no longer known);
- before the daemon ever opened the device, host requests are not read at
  all (the host times out); the daemon's first open processes them;
- once the registered daemon has gone, every request fails at once.

``KernelFsService`` is the filesystem service the daemon's ``SimPlatform``
talks to (:mod:`hvbsd.vss.simwire`), over the guest's kernel mount table;
every suspension and resume is mirrored into the kernel state (``suspended``)
and ``zpool sync`` into ``pool_syncs``, where the FreeBSD commands and checks
see them.

``Loop`` is the one small selector loop both run in (inside the simulated
host process, :mod:`hvbsd.sim.host`, or a test).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from hvbsd.sim.kernel import Kernel
from hvbsd.vss import protocol, simwire
from hvbsd.vss.mounts import Fsid
from hvbsd.vss.mounts import Mount as VssMount
from hvbsd.vss.protocol import MESSAGE_SIZE, Op

LOG = logging.getLogger("hvbsd.sim.hyperv_vss")

FS_DEVICE_NAME = "hv_fsvss_dev"
APP_DEVICE_NAME = "hv_appvss_dev"
FS_SERVICE_NAME = "fs.sock"
TIMEOUT_LIMIT = 15.0  # hv_snapshot.c TIMEOUT_LIMIT, seconds

# hv_utilreg.h
HV_S_OK = 0x00000000
HV_E_FAIL = 0x80004005
STATUS_NAMES = {HV_S_OK: "HV_S_OK", HV_E_FAIL: "HV_E_FAIL"}
VSS_HBU_NO_AUTO_RECOVERY = 5

# hv_snapshot.c: the host's operations
HOST_OPS = {
    "CREATE": 0,
    "DELETE": 1,
    "HOT_BACKUP": 2,
    "GET_DM_INFO": 3,
    "BU_COMPLETE": 4,
    "FREEZE": 5,
    "THAW": 6,
    "AUTO_RECOVER": 7,
}
HOST_OP_NAMES = {number: name for name, number in HOST_OPS.items()}
TO_USERLAND = {HOST_OPS["HOT_BACKUP"]: Op.CHECK, HOST_OPS["FREEZE"]: Op.FREEZE,
               HOST_OPS["THAW"]: Op.THAW}

#: called with the host status (HV_S_OK / HV_E_FAIL) and extra fields (flags)
Answer = Callable[[int, Dict[str, Any]], None]


# -- a small selector loop with timers ------------------------------------------------


class Loop:
    """selectors plus timers; single-threaded, ``run_once`` from the caller's loop."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: List[Tuple[float, int, Callable[[], None]]] = []
        self._serial = 0

    def add_reader(self, fileobj: Any, callback: Callable[[], None]) -> None:
        self.selector.register(fileobj, selectors.EVENT_READ, callback)

    def remove_reader(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fileobj)

    def call_at(self, when: float, callback: Callable[[], None]) -> int:
        self._serial += 1
        self._timers.append((when, self._serial, callback))
        self._timers.sort(key=lambda timer: (timer[0], timer[1]))
        return self._serial

    def cancel(self, handle: int) -> None:
        self._timers = [timer for timer in self._timers if timer[1] != handle]

    def run_once(self, limit: Optional[float] = None) -> None:
        """Wait at most ``limit`` seconds (None: until something happens)."""
        timeout = limit
        if self._timers:
            until = max(0.0, self._timers[0][0] - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        for key, _ in self.selector.select(timeout):
            key.data()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, callback = self._timers.pop(0)
            callback()

    def close(self) -> None:
        self.selector.close()


def bind_unix(path: Path, backlog: int = 16) -> socket.socket:
    """A listening UNIX socket at ``path`` (a stale socket there is replaced).

    Paths longer than sun_path holds are bound relative to their directory.
    """
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(str(path))) < 100:
            listener.bind(str(path))
        else:
            here = os.open(".", os.O_RDONLY)
            try:
                os.chdir(path.parent)
                listener.bind(path.name)
            finally:
                os.fchdir(here)
                os.close(here)
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


def connect_unix(path: Path, timeout: Optional[float]) -> socket.socket:
    """A client connection to ``path`` (long paths through /proc/self/fd)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if len(os.fsencode(str(path))) < 100:
            sock.connect(str(path))
        else:
            directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.connect(f"/proc/self/fd/{directory}/{path.name}")
            finally:
                os.close(directory)
    except BaseException:
        sock.close()
        raise
    return sock


# -- the driver -----------------------------------------------------------------------


@dataclass
class _Opener:
    """One registered opener of a device: its connection and unread bytes."""

    sock: socket.socket
    role: str
    pending: bytes = b""

    @property
    def pid(self) -> Optional[int]:
        try:
            credentials = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        except OSError:
            return None
        pid = int.from_bytes(credentials[:4], "little")
        return pid or None


@dataclass
class _Request:
    host_op: int
    op: Op
    msgid: int
    answer: Answer
    stage: str  # "app" or "fs": the device whose queue holds it
    arrived: float
    timer: int = 0
    path: List[str] = field(default_factory=list)  # devices asked so far


class VssDriver:
    """The kernel side of the VSS devices of one guest, in a ``Loop``.

    ``dev_dir`` is the guest's /dev on the host. ``announce(kind, cdev)`` is
    called when a device appears (``CREATE``) or goes (``DESTROY``), so that
    the caller can send devd the DEVFS/CDEV event.
    """

    def __init__(self, loop: Loop, dev_dir: Path, timeout: float = TIMEOUT_LIMIT,
                 announce: Optional[Callable[[str, str], None]] = None,
                 in_guest: Optional[Callable[[int], bool]] = None) -> None:
        self.loop = loop
        self.dev_dir = Path(dev_dir)
        self.timeout = timeout
        self.announce = announce
        # detach kills only openers for which this says True (processes of the guest)
        self.in_guest = in_guest or (lambda pid: False)
        self.openers: Dict[str, Optional[_Opener]] = {"fs": None, "app": None}
        self.ever_opened = False  # the fs daemon's proc is remembered once it opened
        self.current: Optional[_Request] = None
        self.unread: List[Tuple[int, Answer]] = []  # host requests before any open
        self.events: List[Dict[str, Any]] = []
        self._listeners: Dict[str, socket.socket] = {}

    # -- attach / detach ---------------------------------------------------------

    def device_path(self, role: str) -> Path:
        return self.dev_dir / (FS_DEVICE_NAME if role == "fs" else APP_DEVICE_NAME)

    def attach(self) -> None:
        """Create both devices (0640 as the driver does) and announce them."""
        for role in ("fs", "app"):
            path = self.device_path(role)
            listener = bind_unix(path)
            os.chmod(path, 0o640)
            self._listeners[role] = listener
            self.loop.add_reader(listener, lambda role=role: self._accept(role))
        for role in ("fs", "app"):
            self._note("create", device=self.device_path(role).name)
            if self.announce is not None:
                self.announce("CREATE", self.device_path(role).name)

    def detach(self, kill: bool = True) -> None:
        """Remove the devices; like the driver's detach, SIGKILL the openers
        (those ``in_guest`` accepts: never a process outside the guest)."""
        for role, listener in list(self._listeners.items()):
            self.loop.remove_reader(listener)
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.device_path(role))
        self._listeners.clear()
        for role, opener in list(self.openers.items()):
            if opener is None:
                continue
            pid = opener.pid
            if kill and pid is not None and pid != os.getpid() and self.in_guest(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 9)
                self._note("killed", device=role, pid=pid)
            self._close(role)
        if self.current is not None:
            self.loop.cancel(self.current.timer)
            self.current = None
        for role in ("fs", "app"):
            self._note("destroy", device=self.device_path(role).name)
            if self.announce is not None:
                self.announce("DESTROY", self.device_path(role).name)

    # -- openers -------------------------------------------------------------------

    def _accept(self, role: str) -> None:
        listener = self._listeners.get(role)
        if listener is None:
            return
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(True)
        sock.settimeout(2.0)
        if self.openers[role] is not None:
            self._note("busy", device=role)
            with contextlib.suppress(OSError):
                sock.sendall(protocol.handshake(busy=True))
            sock.close()
            return
        try:
            sock.sendall(protocol.handshake(busy=False))
        except OSError:
            sock.close()
            return
        opener = _Opener(sock, role)
        self.openers[role] = opener
        self.loop.add_reader(sock, lambda: self._readable(opener))
        self._note("open", device=role, pid=opener.pid)
        if role == "fs":
            self.ever_opened = True
            unread, self.unread = self.unread, []
            for host_op, answer in unread:
                self.host_request(host_op, answer)

    def _close(self, role: str) -> None:
        opener = self.openers[role]
        if opener is None:
            return
        self.openers[role] = None
        self.loop.remove_reader(opener.sock)
        opener.sock.close()
        self._note("close", device=role)

    def _readable(self, opener: _Opener) -> None:
        try:
            chunk = opener.sock.recv(65536)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError:
            chunk = b""
        if not chunk:
            if self.openers[opener.role] is opener:
                self._close(opener.role)
            return
        data = opener.pending + chunk
        whole = len(data) - len(data) % MESSAGE_SIZE
        opener.pending = data[whole:]
        for offset in range(0, whole, MESSAGE_SIZE):
            self._daemon_answer(opener.role, protocol.decode(data[offset:offset + MESSAGE_SIZE]))

    def _send(self, role: str, request: _Request) -> None:
        opener = self.openers[role]
        request.stage = role
        request.path.append(role)
        self._note("notify", device=role, op=request.op.name, msgid=request.msgid)
        if opener is None:
            return  # nobody to read it: the timer answers the host
        try:
            opener.sock.sendall(protocol.encode(request.op, 0, request.msgid))
        except OSError:
            self._close(role)

    # -- host side ---------------------------------------------------------------

    def host_request(self, host_op: int, answer: Answer) -> None:
        """One request from the host; ``answer`` is called once, or never (dropped)."""
        name = HOST_OP_NAMES.get(host_op, f"op {host_op}")
        op = TO_USERLAND.get(host_op)
        if host_op == HOST_OPS["GET_DM_INFO"]:
            self._note("host", op=name, outcome="answered by the kernel")
            answer(HV_S_OK, {"flags": 0})
            return
        if op is None:
            self._note("host", op=name, outcome="unsupported")
            answer(HV_E_FAIL, {})
            return
        if self.openers["fs"] is None:
            if not self.ever_opened:
                self._note("host", op=name, outcome="not read: the daemon never opened")
                self.unread.append((host_op, answer))
                return
            self._note("host", op=name, outcome="failed: the daemon has gone")
            answer(HV_E_FAIL, {})
            return
        if self.current is not None:
            self._note("host", op=name, outcome="dropped: a request is in flight",
                       in_flight=self.current.msgid)
            return
        request = _Request(host_op, op, time.time_ns(), answer, "", time.monotonic())
        self.current = request
        request.timer = self.loop.call_at(request.arrived + self.timeout,
                                          lambda: self._expire(request))
        self._note("host", op=name, outcome="queued", msgid=request.msgid)
        first = "app" if op != Op.THAW and self.openers["app"] is not None else "fs"
        self._send(first, request)

    def _finish(self, request: _Request, status: int, why: str) -> None:
        if self.current is request:
            self.current = None
            self.loop.cancel(request.timer)
        extra: Dict[str, Any] = {}
        if request.op == Op.CHECK:
            extra["flags"] = VSS_HBU_NO_AUTO_RECOVERY
        self._note("reply", op=request.op.name, msgid=request.msgid,
                   status=STATUS_NAMES[status], why=why, path=request.path)
        request.answer(status, extra)

    def _expire(self, request: _Request) -> None:
        if self.current is request:
            self._finish(request, HV_E_FAIL,
                         f"timed out after {self.timeout:g} s waiting for {request.stage}")

    def _daemon_answer(self, role: str, message: protocol.Message) -> None:
        request = self.current
        if request is None or request.msgid != message.msgid or request.stage != role:
            self._note("late", device=role, op=message.op_name, msgid=message.msgid,
                       outcome="dropped: no such request waiting")
            return
        ok = message.status == protocol.Status.SUCCESS
        self._note("ack", device=role, op=request.op.name, msgid=message.msgid, ok=ok)
        if not ok:
            self._finish(request, HV_E_FAIL, f"{role} failed")
            return
        if request.op == Op.THAW:
            if role == "fs" and self.openers["app"] is not None:
                self._send("app", request)
                return
            self._finish(request, HV_S_OK, "done")
            return
        if role == "app":
            if self.openers["fs"] is None:
                self._note("lost", outcome="vss daemon was killed", msgid=message.msgid)
                return  # the timer answers
            self._send("fs", request)
            return
        self._finish(request, HV_S_OK, "done")

    def _note(self, what: str, **details: Any) -> None:
        event = {"time": time.time(), "what": what, **details}
        self.events.append(event)
        del self.events[:-500]
        LOG.info("%s %s", what, " ".join(f"{k}={v}" for k, v in details.items()))

    def status(self) -> Dict[str, Any]:
        return {
            "fs_registered": self.openers["fs"] is not None,
            "app_registered": self.openers["app"] is not None,
            "ever_opened": self.ever_opened,
            "in_flight": None if self.current is None else {
                "op": self.current.op.name, "msgid": self.current.msgid,
                "stage": self.current.stage},
            "unread": len(self.unread),
            "timeout": self.timeout,
        }


# -- filesystems ----------------------------------------------------------------------


def kernel_mounts(kernel: Kernel) -> List[VssMount]:
    """The kernel's mount table as getfsstat(2) would give it to the daemon."""
    return kernel_mounts_of(kernel.snapshot())


class KernelFsService(simwire.SimFsServer):
    """The simwire filesystem service over a guest's kernel state."""

    def __init__(self, path: Path, kernel: Kernel) -> None:
        self.kernel = kernel
        with kernel.transaction() as state:
            state.suspended = []  # nothing is suspended before the service exists
        super().__init__(str(path), lambda: kernel_mounts(kernel), self._mirror)

    def _mirror(self, fsid: Fsid, suspended: bool) -> None:
        with self.kernel.transaction() as state:
            entry = [int(fsid[0]), int(fsid[1])]
            if suspended and entry not in state.suspended:
                state.suspended.append(entry)
            if not suspended and entry in state.suspended:
                state.suspended.remove(entry)

    def _zpool_sync(self, pools: Any) -> Dict[str, Any]:
        reply = super()._zpool_sync(pools)
        if reply["ok"]:
            with self.kernel.transaction() as state:
                known = [simwire.pool_of(m) for m in kernel_mounts_of(state) if m.fstype == "zfs"]
                for pool in pools or sorted(set(known)):
                    state.pool_syncs[pool] = state.pool_syncs.get(pool, 0) + 1
        return reply

    def close(self) -> None:
        super().close()
        with self.kernel.transaction() as state:
            state.suspended = []


def kernel_mounts_of(state: Any) -> List[VssMount]:
    """``state.mounts`` (kernel.Mount) as the daemon's mount entries."""
    return [VssMount((int(m.fsid[0]), int(m.fsid[1])), m.fstype, m.mountpoint, m.source,
                     m.readonly)
            for m in state.mounts]
