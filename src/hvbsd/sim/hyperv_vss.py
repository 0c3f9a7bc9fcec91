"""The guest kernel's ``hv_vss`` driver, simulated, and the filesystems it freezes.

``VssDriver`` is the kernel side of ``/dev/hv_fsvss_dev`` and
``/dev/hv_appvss_dev``, following FreeBSD's
``sys/dev/hyperv/utilities/hv_snapshot.c`` (each rule below names the
function it comes from). The devices are UNIX ``SOCK_SEQPACKET`` sockets at
the device paths; their records are described in :mod:`hvbsd.vss.simwire`
(one whole 64-byte message per record, as each ioctl moves one whole
message, so nothing can fall out of step):

- one opener per device, a second one gets EBUSY; the opener's pid
  (SO_PEERCRED) is remembered as ``proc_task`` and stays remembered after
  close; detach sends it SIGKILL (``hv_vss_dev_open``,
  ``hv_appvss_dev_open``, ``hv_vss_detach``);
- before the daemon ever opened its device, host requests are not read
  (``hv_vss_callback``); its first open processes them
  (``hv_vss_dev_open``); once it closed again, every host request is
  answered HV_E_FAIL at once (``hv_vss_is_daemon_killed_after_launch``,
  ``hv_vss_process_request``);
- HOT_BACKUP -> CHECK, FREEZE, THAW go to userland; GET_DM_INFO is answered
  by the driver itself; any other host operation gets no response at all
  (``hv_vss_process_request``);
- one transaction at a time: a request arriving while any queue holds one is
  ignored without a reply, and there are four request buffers
  (``hv_vss_get_new_req_locked``, ``hv_vss_init_send_receive_queue``);
- CHECK and FREEZE go to the app device first when an app is registered,
  then to the daemon; THAW to the daemon first, then to the app
  (``hv_vss_start_notify``, ``hv_vss_app_acked``, ``hv_vss_daemon_acked``);
- the driver switches on the ``opt`` of the answer, not of the request
  (``hv_vss_daemon_acked``, ``hv_vss_app_acked``); see ``_acked``;
- ONE timer per transaction, armed when it is first queued and never
  re-armed at a hand-off; expiry pulls the request from whichever queue
  holds it and tells the host HV_E_FAIL, and nothing else
  (``hv_vss_start_notify``, ``hv_vss_timeout``); a later answer is dropped
  silently while the write still returns 0 (``hv_vss_daemon_acked``);
- a read with nothing queued returns status 1 and msgid 0
  (``hv_vss_notified``); POLLIN is rung when a request enters a device's
  queue and there is no POLLHUP (``hv_vss_notify``,
  ``hv_vss_dev_daemon_poll``); the reply to CHECK carries flags 5
  (``hv_vss_notify_host_result_locked``). A POLLIN record cannot be taken
  back: when the timer takes a request the opener has not read yet, its next
  read is the empty one, as a real daemon's is when the timer fires between
  its poll and its IOCHVVSSREAD.

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
import errno
import logging
import os
import selectors
import signal
import socket
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from hvbsd.sim import namespace
from hvbsd.sim.kernel import Kernel
from hvbsd.vss import protocol, simwire
from hvbsd.vss.mounts import Fsid
from hvbsd.vss.mounts import Mount as VssMount
from hvbsd.vss.protocol import Op

LOG = logging.getLogger("hvbsd.sim.hyperv_vss")

FS_DEVICE_NAME = "hv_fsvss_dev"
APP_DEVICE_NAME = "hv_appvss_dev"
FS_SERVICE_NAME = "fs.sock"
TIMEOUT_LIMIT = 15.0  # hv_snapshot.c TIMEOUT_LIMIT, seconds
REQUEST_BUFFERS = 4  # hv_vss_init_send_receive_queue: max_list
RING_SLOTS = 64  # host messages the VMBus ring holds before the daemon's first open
MAX_RECORDS_PER_WAKEUP = 64
MAX_EVENTS = 500

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


def bind_unix(path: Path, backlog: int = 16,
              kind: socket.SocketKind = socket.SOCK_STREAM) -> socket.socket:
    """A listening UNIX socket at ``path`` (a stale socket there is replaced).

    Paths longer than sun_path holds are bound relative to their directory.
    """
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, kind)
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


def connect_unix(path: Path, timeout: Optional[float],
                 kind: socket.SocketKind = socket.SOCK_STREAM) -> socket.socket:
    """A client connection to ``path`` (long paths through /proc/self/fd)."""
    sock = socket.socket(socket.AF_UNIX, kind)
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


def peer_pid(sock: socket.socket) -> Optional[int]:
    """The pid of the process that connected (SO_PEERCRED), in our pid namespace."""
    try:
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                      struct.calcsize("3i"))
    except OSError:
        return None
    pid = int(struct.unpack("3i", credentials)[0])
    return pid if pid > 0 else None


@dataclass
class _Opener:
    """The registered opener of a device: its connection."""

    sock: socket.socket
    role: str
    pid: Optional[int]


@dataclass
class _Request:
    host_op: int
    op: Op  # the opt the driver set from the host's operation (hv_vss_init_req)
    msgid: int
    answer: Answer
    arrived: float
    timer: int = 0
    expires: float = 0.0  # monotonic time the one callout fires
    path: List[str] = field(default_factory=list)  # devices notified so far


@dataclass
class _Device:
    """One cdev and its ``hv_vss_dev_sc``: the queues and the remembered opener."""

    role: str
    listener: Optional[socket.socket] = None
    opener: Optional[_Opener] = None  # register_done / app_register_done
    proc_task: Optional[Tuple[int, Optional[int]]] = None  # pid and start time
    notify: List[_Request] = field(default_factory=list)  # to_notify_queue
    ack: List[_Request] = field(default_factory=list)  # to_ack_queue


class VssDriver:
    """The kernel side of the VSS devices of one guest, in a ``Loop``.

    ``dev_dir`` is the guest's /dev on the host. ``announce(kind, cdev)`` is
    called when a device appears (``CREATE``) or goes (``DESTROY``), so that
    the caller can send devd the DEVFS/CDEV event. ``timeout`` is the
    driver's TIMEOUT_LIMIT (15 s; smaller in tests).
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
        self.devices: Dict[str, _Device] = {"fs": _Device("fs"), "app": _Device("app")}
        self.live: List[_Request] = []  # request buffers in use (at most REQUEST_BUFFERS)
        self.unread: List[Tuple[int, Answer]] = []  # the VMBus ring before any open
        self.events: List[Dict[str, Any]] = []

    # -- attach / detach ---------------------------------------------------------

    def device_path(self, role: str) -> Path:
        return self.dev_dir / (FS_DEVICE_NAME if role == "fs" else APP_DEVICE_NAME)

    @property
    def openers(self) -> Dict[str, Optional[_Opener]]:
        return {role: device.opener for role, device in self.devices.items()}

    def attach(self) -> None:
        """Create both devices, root:wheel 0640 as ``hv_vss_attach`` makes them."""
        for role, device in self.devices.items():
            path = self.device_path(role)
            device.listener = bind_unix(path, kind=simwire.DEVICE_SOCKET_TYPE)
            os.chmod(path, 0o640)
            self.loop.add_reader(device.listener, lambda role=role: self._accept(role))
        for role in self.devices:
            self._note("create", device=self.device_path(role).name)
            if self.announce is not None:
                self.announce("CREATE", self.device_path(role).name)

    def detach(self, kill: bool = True) -> None:
        """``hv_vss_detach``: SIGKILL both remembered openers, drop every request
        without answering it, destroy the devices. Only processes ``in_guest``
        accepts are signalled, and only while the remembered process still
        lives (same start time): never a process outside the guest."""
        for role, device in self.devices.items():
            if kill and device.proc_task is not None:
                pid, starttime = device.proc_task
                if (pid != os.getpid() and starttime is not None
                        and namespace.process_starttime(pid) == starttime
                        and self.in_guest(pid)):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                    self._note("killed", device=role, pid=pid)
            if device.opener is not None:
                self._close(role)
            if device.listener is not None:
                self.loop.remove_reader(device.listener)
                device.listener.close()
                device.listener = None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.device_path(role))
            device.notify.clear()
            device.ack.clear()
        for request in self.live:  # hv_vss_destroy_send_receive_queue: no reply
            self.loop.cancel(request.timer)
        self.live.clear()
        for role in self.devices:
            self._note("destroy", device=self.device_path(role).name)
            if self.announce is not None:
                self.announce("DESTROY", self.device_path(role).name)

    # -- openers -------------------------------------------------------------------

    def _accept(self, role: str) -> None:
        device = self.devices[role]
        if device.listener is None:
            return
        try:
            sock, _ = device.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        pid = peer_pid(sock)
        if device.opener is not None:
            # hv_vss_dev_open / hv_appvss_dev_open: register_done -> EBUSY
            self._note("busy", device=role, pid=pid)
            with contextlib.suppress(OSError):
                sock.send(simwire.open_record(errno.EBUSY))
            sock.close()
            return
        try:
            sock.send(simwire.open_record(0))
        except OSError:
            sock.close()
            return
        opener = _Opener(sock, role, pid)
        device.opener = opener
        device.proc_task = None if pid is None else (pid, namespace.process_starttime(pid))
        self.loop.add_reader(sock, lambda: self._readable(opener))
        self._note("open", device=role, pid=pid)
        if device.notify:  # hv_vss_dev_daemon_poll: POLLIN while the queue holds one
            self._ring(device)
        if role == "fs":
            # hv_vss_dev_open calls hv_vss_callback: the host's queued messages are read
            unread, self.unread = self.unread, []
            for host_op, answer in unread:
                self._process(host_op, answer)

    def _close(self, role: str) -> None:
        """The last close: ``register_done = false``; ``proc_task`` is kept."""
        device = self.devices[role]
        opener = device.opener
        if opener is None:
            return
        device.opener = None
        self.loop.remove_reader(opener.sock)
        opener.sock.close()
        self._note("close", device=role, pid=opener.pid)

    def _readable(self, opener: _Opener) -> None:
        for _ in range(MAX_RECORDS_PER_WAKEUP):
            if self.devices[opener.role].opener is not opener:
                return
            try:
                record = opener.sock.recv(simwire.DEVICE_RECORD_SIZE + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                record = b""
            if not record:
                self._close(opener.role)
                return
            decoded = simwire.decode_record(record)
            if decoded is None or decoded[0] not in (simwire.KIND_READ, simwire.KIND_WRITE):
                self._note("bad record", device=opener.role, size=len(record),
                           outcome="ignored: an ioctl moves one whole message")
                continue
            kind, message = decoded
            if kind == simwire.KIND_READ:
                self._notified(opener)
            else:
                self._acked(opener.role, message)

    def _deliver(self, opener: _Opener, record: bytes, what: str) -> None:
        """Send without ever blocking the host: an opener that reads nothing loses it."""
        try:
            opener.sock.send(record)
        except (BlockingIOError, InterruptedError):
            self._note("undelivered", device=opener.role, what=what,
                       outcome="the opener is not reading")
        except OSError:
            self._close(opener.role)

    def _ring(self, device: _Device) -> None:
        """``selwakeup``: the opener's poll reports POLLIN."""
        if device.opener is not None:
            self._deliver(device.opener, simwire.encode_record(simwire.KIND_POLLIN), "POLLIN")

    def _notified(self, opener: _Opener) -> None:
        """IOCHVVSSREAD, ``hv_vss_notified``: the head of the notify queue moves
        to the ack queue and is copied out; an empty queue gives status 1."""
        device = self.devices[opener.role]
        if device.notify:
            request = device.notify.pop(0)
            device.ack.append(request)
            message = protocol.encode(request.op, protocol.Status.SUCCESS, request.msgid)
            self._note("read", device=opener.role, op=request.op.name, msgid=request.msgid)
        else:
            # the ioctl's buffer is zeroed for IOC_OUT, only status is set
            message = protocol.encode(Op.NONE, protocol.Status.FAIL, 0)
            self._note("read", device=opener.role, outcome="empty: status 1, msgid 0")
        self._deliver(opener, simwire.encode_record(simwire.KIND_READ, message), "read")

    def _notify(self, role: str, request: _Request) -> None:
        """``hv_vss_notify``: queue the request on a device and wake its poll."""
        device = self.devices[role]
        device.notify.append(request)
        request.path.append(role)
        self._note("notify", device=role, op=request.op.name, msgid=request.msgid)
        self._ring(device)

    # -- host side ---------------------------------------------------------------

    def host_request(self, host_op: int, answer: Answer) -> None:
        """One message from the host; ``answer`` is called once, or never."""
        fs = self.devices["fs"]
        name = HOST_OP_NAMES.get(host_op, f"op {host_op}")
        if fs.opener is None and fs.proc_task is None:
            # hv_vss_callback: the daemon has never been registered, the message
            # stays in the VMBus ring until its first open
            if len(self.unread) >= RING_SLOTS:
                self._note("host", op=name, outcome="lost: the VMBus ring is full")
                return
            self._note("host", op=name, outcome="not read: the daemon never opened")
            self.unread.append((host_op, answer))
            return
        self._process(host_op, answer)

    def _process(self, host_op: int, answer: Answer) -> None:
        """``hv_vss_process_request`` for one host message."""
        name = HOST_OP_NAMES.get(host_op, f"op {host_op}")
        fs = self.devices["fs"]
        if fs.opener is None and fs.proc_task is not None:
            # hv_vss_is_daemon_killed_after_launch: every message fails at once
            extra: Dict[str, Any] = {}
            if host_op == HOST_OPS["HOT_BACKUP"]:
                extra["flags"] = VSS_HBU_NO_AUTO_RECOVERY
            elif host_op == HOST_OPS["GET_DM_INFO"]:
                extra["flags"] = 0
            self._note("host", op=name, outcome="failed: the daemon has gone")
            answer(HV_E_FAIL, extra)
            return
        op = TO_USERLAND.get(host_op)
        if op is not None:
            busy = [r for d in self.devices.values() for r in d.notify + d.ack]
            if busy:
                # hv_vss_get_new_req_locked: a new request before the previous finished
                self._note("host", op=name, outcome="dropped: a request is in flight",
                           in_flight=busy[0].msgid)
                return
            if len(self.live) >= REQUEST_BUFFERS:
                self._note("host", op=name, outcome="dropped: no free request buffer")
                return
            request = _Request(host_op, op, time.time_ns(), answer, time.monotonic())
            self.live.append(request)
            self._note("host", op=name, outcome="queued", msgid=request.msgid)
            # hv_vss_start_notify: app first for CHECK and FREEZE, the daemon for THAW,
            # and one callout for the whole transaction
            first = "app" if op != Op.THAW and self.devices["app"].opener is not None else "fs"
            self._notify(first, request)
            request.expires = request.arrived + self.timeout
            request.timer = self.loop.call_at(request.expires, lambda: self._expire(request))
        elif host_op == HOST_OPS["GET_DM_INFO"]:
            self._note("host", op=name, outcome="answered by the kernel")
            answer(HV_S_OK, {"flags": 0})
        else:
            # "Unknown opt from host": logged, and the host gets no response
            self._note("host", op=name, outcome="no response: unknown operation")

    def _finish(self, request: _Request, status: int, why: str) -> None:
        """``hv_vss_notify_host_result_locked``: answer the host, recycle the buffer."""
        if request not in self.live:
            return
        self.live.remove(request)
        self.loop.cancel(request.timer)
        for device in self.devices.values():
            for queue in (device.notify, device.ack):
                if request in queue:
                    queue.remove(request)
        extra: Dict[str, Any] = {}
        if request.op == Op.CHECK:
            extra["flags"] = VSS_HBU_NO_AUTO_RECOVERY
        self._note("reply", op=request.op.name, msgid=request.msgid,
                   status=STATUS_NAMES[status], why=why, path=request.path)
        request.answer(status, extra)

    def _expire(self, request: _Request) -> None:
        """``hv_vss_timeout``: out of whichever queue holds it, HV_E_FAIL to the host."""
        where = [f"{role} {name}" for role, device in self.devices.items()
                 for name, queue in (("notify", device.notify), ("ack", device.ack))
                 if request in queue]
        self._finish(request, HV_E_FAIL, f"timed out after {self.timeout:g} s"
                     f" ({where[0] if where else 'in no queue'})")

    def _acked(self, role: str, message: protocol.Message) -> None:
        """IOCHVVSSWRITE: ``hv_vss_daemon_acked`` (fs) or ``hv_vss_app_acked`` (app).

        The request is looked up by msgid in this device's ack queue; an
        unknown msgid (it timed out) is dropped and the write still returns 0.
        The driver then switches on the ``opt`` of the ANSWER. A mismatch with
        the request's opt is a KASSERT: a kernel built with INVARIANTS panics,
        a release kernel (no INVARIANTS, what a guest runs) goes on with the
        answer's opt. The simulator does what the release kernel does and
        notes the assertion as a driver error. An opt the switch does not know
        leaves the request in no queue with its timer still running: the host
        gets HV_E_FAIL when it expires.
        """
        device = self.devices[role]
        request = next((r for r in device.ack if r.msgid == message.msgid), None)
        if request is None:
            self._note("late", device=role, op=message.op_name, msgid=message.msgid,
                       outcome="dropped: no such request waiting")
            return
        device.ack.remove(request)
        if message.op != request.op:
            self._note("error", device=role, msgid=message.msgid,
                       outcome="KASSERT: Mismatched VSS operation!",
                       request_op=request.op.name, answer_op=message.op_name)
        # hv_vss_app_acked keeps the status in a uint8_t
        status = message.status & 0xFF if role == "app" else message.status
        ok = status == protocol.Status.SUCCESS
        self._note("ack", device=role, op=message.op_name, msgid=message.msgid, ok=ok)
        result = HV_S_OK if ok else HV_E_FAIL
        if role == "fs":
            if message.op in (Op.CHECK, Op.FREEZE):
                self._finish(request, result, "done" if ok else "fs failed")
            elif message.op == Op.THAW:
                if self.devices["app"].opener is not None:
                    if ok:
                        self._notify("app", request)
                    else:
                        self._finish(request, HV_E_FAIL, "fs failed")
                else:
                    self._finish(request, result, "done" if ok else "fs failed")
            else:
                self._held(role, request, message)
            return
        if self.devices["fs"].opener is None:
            self._note("lost", device=role, msgid=message.msgid,
                       outcome="Fatal: vss daemon was killed")
            return  # the timer answers the host
        if message.op in (Op.CHECK, Op.FREEZE):
            if ok:
                self._notify("fs", request)
            else:
                self._finish(request, HV_E_FAIL, "app failed")
        elif message.op == Op.THAW:
            self._finish(request, result, "done" if ok else "app failed")
        else:
            self._held(role, request, message)

    def _held(self, role: str, request: _Request, message: protocol.Message) -> None:
        self._note("held", device=role, msgid=message.msgid, answer_op=message.op_name,
                   outcome="no case for the answer's opt: the timer fails the request")

    def _note(self, what: str, **details: Any) -> None:
        event = {"time": time.time(), "what": what, **details}
        self.events.append(event)
        del self.events[:-MAX_EVENTS]
        LOG.info("%s %s", what, " ".join(f"{k}={v}" for k, v in details.items()))

    def status(self) -> Dict[str, Any]:
        in_flight = None
        if self.live:
            request = self.live[0]
            stage = next((f"{role} {name}" for role, device in self.devices.items()
                          for name, queue in (("notify", device.notify), ("ack", device.ack))
                          if request in queue), "held")
            in_flight = {"op": request.op.name, "msgid": request.msgid, "stage": stage,
                         "expires_in": round(request.expires - time.monotonic(), 3),
                         "expires": request.expires}
        return {
            "fs_registered": self.devices["fs"].opener is not None,
            "app_registered": self.devices["app"].opener is not None,
            "ever_opened": self.devices["fs"].proc_task is not None,
            "fs_opener": None if self.devices["fs"].opener is None
            else self.devices["fs"].opener.pid,
            "app_opener": None if self.devices["app"].opener is None
            else self.devices["app"].opener.pid,
            "in_flight": in_flight,
            "live": len(self.live),
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
