"""The simulator's filesystem service: its wire format, a client, a reference server.

A simulated guest has no ``/dev/ufssuspend``; the simulator offers the same
operations on a UNIX stream socket instead (``--sim-platform PATH``). Each
request is one JSON object on one line, each reply is one JSON object on one
line::

    {"op": "mounts"}
        -> {"ok": true, "mounts": [{"fsid": [INT32, INT32], "fstype": "ufs",
              "mount_on": "/var", "mount_from": "/dev/da0p3", "read_only": false}]}
    {"op": "suspend", "fsid": [INT32, INT32]}
        -> {"ok": true}
    {"op": "resume"}
        -> {"ok": true}
    {"op": "zpool_sync", "pools": ["zroot"]}      (empty list: every pool)
        -> {"ok": true}
    {"op": "sync"}
        -> {"ok": true}

A failure is ``{"ok": false, "errno": "EBUSY", "message": "..."}`` with the
errno name the kernel would have returned:

- suspend: ENOENT (no such fsid), EINVAL (not UFS), EBUSY (already
  suspended, or this connection already holds a suspension), EDEADLK;
- resume: EBADF (this connection holds no suspension);
- zpool_sync: ENOENT (no such pool); anything malformed: EINVAL.

Like a descriptor of ``/dev/ufssuspend``, one connection holds at most one
suspension, and the suspension lasts until ``resume`` on that connection or
until the connection closes (the daemon exiting or being killed included).

The simulated VSS devices (``/dev/hv_fsvss_dev``, ``/dev/hv_appvss_dev``)
have their own wire, defined here too (the daemon's ``SocketChannel`` and the
simulated driver both use it). A device is a UNIX ``SOCK_SEQPACKET`` socket:
each record is delivered whole or not at all, so a fragment cannot exist and
the two sides cannot fall out of step. Every record is ``DEVICE_RECORD_SIZE``
bytes: a u32 kind (little-endian) and one whole 64-byte ``hv_vss_opt_msg``,
as each ioctl moves one whole message::

    driver -> opener  KIND_OPEN     open(2)'s result: status 0, or EBUSY
    driver -> opener  KIND_POLLIN   a request waits in this device's queue
    opener -> driver  IOCHVVSSREAD  the read ioctl (the message part is ignored)
    driver -> opener  IOCHVVSSREAD  what the ioctl copied out: the request, or
                                    status 1 and msgid 0 when nothing waits
    opener -> driver  IOCHVVSSWRITE the answer; nothing comes back (the ioctl
                                    returns 0 whether or not it was wanted)

Connecting is open(2), closing the connection is the last close(2).
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import json
import os
import selectors
import socket
import stat
import struct
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from hvbsd.vss import protocol
from hvbsd.vss.mounts import Fsid, Mount
from hvbsd.vss.protocol import MESSAGE_SIZE, Message

MAX_LINE = 1 << 20

MountSource = Union[Iterable[Mount], Callable[[], Iterable[Mount]]]
ChangeCallback = Callable[[Fsid, bool], None]


class WireError(ValueError):
    """A request or reply that does not follow the wire format."""


# -- the simulated VSS devices --------------------------------------------------------

DEVICE_SOCKET_TYPE = socket.SOCK_SEQPACKET
DEVICE_RECORD_SIZE = 4 + MESSAGE_SIZE
KIND_OPEN = 1
KIND_POLLIN = 2
KIND_READ = protocol.IOCHVVSSREAD
KIND_WRITE = protocol.IOCHVVSSWRITE
DEVICE_KINDS = {KIND_OPEN: "OPEN", KIND_POLLIN: "POLLIN", KIND_READ: "IOCHVVSSREAD",
                KIND_WRITE: "IOCHVVSSWRITE"}
_KIND = struct.Struct("<I")
_EMPTY_MESSAGE = bytes(MESSAGE_SIZE)


def encode_record(kind: int, message: bytes = _EMPTY_MESSAGE) -> bytes:
    """One device record: ``kind`` and a whole 64-byte message."""
    if kind not in DEVICE_KINDS or len(message) != MESSAGE_SIZE:
        raise WireError(f"no device record of kind {kind:#x} with {len(message)} bytes")
    return _KIND.pack(kind) + bytes(message)


def decode_record(record: bytes) -> Optional[Tuple[int, Message]]:
    """``(kind, message)`` of one device record; None when it is not one."""
    if len(record) != DEVICE_RECORD_SIZE:
        return None
    kind = int(_KIND.unpack_from(record)[0])
    if kind not in DEVICE_KINDS:
        return None
    return kind, protocol.decode(record[4:])


def open_record(errno_value: int) -> bytes:
    """The driver's answer to a connection: 0 (the opener is registered) or EBUSY."""
    return encode_record(KIND_OPEN, protocol.encode(protocol.Op.NONE, errno_value, 0))


def device_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, DEVICE_SOCKET_TYPE)


class DeviceKernelSide:
    """A minimal kernel side of one simulated device, for tests and benchmarks.

    It accepts connections on ``path`` (the first opener is registered, later
    ones get EBUSY while it is connected) and plays requests one at a time:
    ``request(op)`` rings POLLIN, hands the request out on the opener's read
    and returns the answer it writes. ``send_raw`` puts any bytes on the wire
    as one record, to see how the opener copes with a record the driver never
    sends. Blocking; one thread drives requests, a second one accepts.
    """

    def __init__(self, path: str) -> None:
        import threading

        self.path = path
        self.listener = device_socket()
        self.listener.bind(path)
        self.listener.listen(8)
        self.client: Optional[socket.socket] = None
        self.connected = threading.Event()
        self.busy_refusals = 0
        self.msgid = 1000
        self.pending: Optional[bytes] = None
        self.empty_reads = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self.client is not None and not _peer_gone(self.client):
                with contextlib.suppress(OSError):
                    sock.send(open_record(errno_module.EBUSY))
                sock.close()
                self.busy_refusals += 1
                continue
            sock.send(open_record(0))
            self.client = sock
            self.connected.set()

    def wait_connected(self, timeout: float = 8.0) -> None:
        assert self.connected.wait(timeout), "the daemon never opened the device"

    def send_raw(self, data: bytes) -> None:
        assert self.client is not None
        self.client.send(data)

    def post(self, op: int, status: int = 0, msgid: Optional[int] = None) -> int:
        """Queue one request and ring POLLIN; its msgid."""
        assert self.client is not None
        if msgid is None:
            self.msgid += 1
            msgid = self.msgid
        self.pending = protocol.encode(op, status, msgid)
        self.client.send(encode_record(KIND_POLLIN))
        return msgid

    def read_frame(self, timeout: float = 8.0) -> Optional[Message]:
        """The opener's next answer (serving its reads meanwhile); None once it closed."""
        assert self.client is not None
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.client.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                record = self.client.recv(DEVICE_RECORD_SIZE + 1)
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                continue
            if not record:
                return None
            decoded = decode_record(record)
            if decoded is None:
                raise WireError(f"the opener sent a record of {len(record)} bytes")
            kind, message = decoded
            if kind == KIND_READ:
                if self.pending is None:
                    self.empty_reads += 1
                reply = self.pending or protocol.encode(protocol.Op.NONE, 1, 0)
                self.pending = None
                self.client.send(encode_record(KIND_READ, reply))
            elif kind == KIND_WRITE:
                return message
            else:
                raise WireError(f"the opener sent a record of kind {kind:#x}")

    def request(self, op: int, status: int = 0, timeout: float = 8.0) -> Message:
        msgid = self.post(op, status)
        answer = self.read_frame(timeout)
        assert answer is not None, f"the daemon closed the channel instead of answering op {op}"
        assert answer.msgid == msgid and answer.op == op, answer
        return answer

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()
        if self.client is not None:
            self.client.close()


def _peer_gone(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def mount_to_wire(mount: Mount) -> Dict[str, Any]:
    return {"fsid": list(mount.fsid), "fstype": mount.fstype, "mount_on": mount.mount_on,
            "mount_from": mount.mount_from, "read_only": mount.read_only}


def mount_from_wire(entry: Any) -> Mount:
    """Parse one mount entry; WireError names the field that is wrong."""
    if not isinstance(entry, dict):
        raise WireError(f"mount entry {entry!r} is not an object")
    fsid = entry.get("fsid")
    if (not isinstance(fsid, list) or len(fsid) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in fsid)):
        raise WireError(f"mount entry {entry!r}: fsid must be two integers")
    for field in ("fstype", "mount_on", "mount_from"):
        if not isinstance(entry.get(field), str):
            raise WireError(f"mount entry {entry!r}: {field} must be a string")
    if not isinstance(entry.get("read_only"), bool):
        raise WireError(f"mount entry {entry!r}: read_only must be true or false")
    try:
        return Mount((fsid[0], fsid[1]), entry["fstype"], entry["mount_on"],
                     entry["mount_from"], entry["read_only"])
    except ValueError as exc:
        raise WireError(f"mount entry {entry!r}: {exc}") from None


def encode_line(message: Dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_line(line: bytes) -> Dict[str, Any]:
    try:
        message = json.loads(line.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"not a JSON line: {exc}") from None
    if not isinstance(message, dict):
        raise WireError(f"not a JSON object: {line[:80]!r}")
    return message


def ok() -> Dict[str, Any]:
    return {"ok": True}


def failure(errno_name: str, message: str) -> Dict[str, Any]:
    return {"ok": False, "errno": errno_name, "message": message}


def pool_of(mount: Mount) -> str:
    """The pool a ZFS dataset lives in: ``zroot`` for ``zroot/var/log``."""
    return mount.mount_from.split("/", 1)[0]


class LineSocket:
    """A blocking client connection that exchanges one JSON line per request."""

    def __init__(self, path: str, timeout: float) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._buffer = b""

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        self._sock.sendall(encode_line(message))
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the filesystem service closed the connection")
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE:
                raise WireError("reply line too long")
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = decode_line(line)
        if not isinstance(reply.get("ok"), bool):
            raise WireError(f"reply without ok flag: {line[:80]!r}")
        return reply

    def close(self) -> None:
        self._sock.close()


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.suspended: Optional[Fsid] = None


class SimFsServer:
    """Reference server of the wire format, over a mount table held in memory.

    Single-threaded: call ``serve(timeout)`` from a poll loop, or run
    ``serve_forever()`` (for example in a test's thread) and stop it with
    ``shutdown()``. Observers read ``suspended`` and ``events``, or pass
    ``on_change(fsid, suspended)``, called whenever a filesystem is suspended
    or resumed.
    """

    def __init__(self, path: str, mounts: MountSource,
                 on_change: Optional[ChangeCallback] = None) -> None:
        self.path = path
        self._mounts = mounts
        self.on_change = on_change
        self.events: List[Tuple[Any, ...]] = []
        self._suspended: Set[Fsid] = set()
        self._faults: Dict[Fsid, List[str]] = {}
        self._connections: Dict[int, _Connection] = {}
        if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(64)
        self._listener.setblocking(False)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._running = False

    # observers and fault injection

    @property
    def suspended(self) -> frozenset:
        """The fsids suspended right now."""
        return frozenset(self._suspended)

    def mounts(self) -> List[Mount]:
        source = self._mounts() if callable(self._mounts) else self._mounts
        return list(source)

    def fail_next_suspend(self, fsid: Fsid, errno_name: str, times: int = 1) -> None:
        """Make the next ``times`` suspensions of ``fsid`` fail with ``errno_name``."""
        self._faults.setdefault(tuple(fsid), []).extend([errno_name] * times)  # type: ignore[arg-type]

    def fileno(self) -> int:
        return self._selector.fileno()

    # serving

    def serve(self, timeout: Optional[float] = None) -> None:
        """Handle whatever is ready within ``timeout`` seconds."""
        for key, events in self._selector.select(timeout):
            if key.fileobj is self._listener:
                self._accept()
            elif key.fileobj == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 512)
            else:
                connection = key.data
                if events & selectors.EVENT_READ:
                    self._read(connection)
                if events & selectors.EVENT_WRITE and connection.sock.fileno() >= 0:
                    self._flush(connection)

    def serve_forever(self) -> None:
        self._running = True
        while self._running:
            self.serve(None)

    def shutdown(self) -> None:
        """Make ``serve_forever`` return (callable from another thread)."""
        self._running = False
        os.write(self._wake_write, b"x")

    def close(self) -> None:
        """Close every connection (resuming what they held) and the listener."""
        for connection in list(self._connections.values()):
            self._drop(connection)
        self._selector.close()
        self._listener.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            connection = _Connection(sock)
            self._connections[sock.fileno()] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _read(self, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(connection)
            return
        connection.inbox += chunk
        while b"\n" in connection.inbox:
            line, connection.inbox = connection.inbox.split(b"\n", 1)
            try:
                reply = self._handle(connection, decode_line(line))
            except WireError as exc:
                reply = failure("EINVAL", str(exc))
            connection.outbox += encode_line(reply)
        if len(connection.inbox) > MAX_LINE:
            self._drop(connection)
            return
        self._flush(connection)

    def _flush(self, connection: _Connection) -> None:
        try:
            sent = connection.sock.send(connection.outbox) if connection.outbox else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(connection)
            return
        connection.outbox = connection.outbox[sent:]
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.outbox else 0)
        self._selector.modify(connection.sock, wanted, connection)

    def _drop(self, connection: _Connection) -> None:
        # closing the connection is closing the /dev/ufssuspend descriptor
        self._release(connection)
        self._connections.pop(connection.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.sock.close()

    def _release(self, connection: _Connection) -> None:
        fsid = connection.suspended
        if fsid is None:
            return
        connection.suspended = None
        self._suspended.discard(fsid)
        self.events.append(("resume", fsid))
        if self.on_change is not None:
            self.on_change(fsid, False)

    def _handle(self, connection: _Connection, request: Dict[str, Any]) -> Dict[str, Any]:
        op = request.get("op")
        if op == "mounts":
            return {"ok": True, "mounts": [mount_to_wire(m) for m in self.mounts()]}
        if op == "suspend":
            return self._suspend(connection, request.get("fsid"))
        if op == "resume":
            if connection.suspended is None:
                return failure("EBADF", "this connection holds no suspension")
            self._release(connection)
            return ok()
        if op == "sync":
            self.events.append(("sync",))
            return ok()
        if op == "zpool_sync":
            return self._zpool_sync(request.get("pools"))
        return failure("EINVAL", f"unknown op {op!r}")

    def _suspend(self, connection: _Connection, raw_fsid: Any) -> Dict[str, Any]:
        if (not isinstance(raw_fsid, list) or len(raw_fsid) != 2
                or not all(isinstance(v, int) for v in raw_fsid)):
            return failure("EINVAL", f"fsid {raw_fsid!r} is not two integers")
        fsid: Fsid = (raw_fsid[0], raw_fsid[1])
        mount = next((m for m in self.mounts() if m.fsid == fsid), None)
        if mount is None:
            return failure("ENOENT", f"no filesystem with fsid {raw_fsid}")
        faults = self._faults.get(fsid)
        if faults:
            errno_name = faults.pop(0)
            return failure(errno_name, f"injected failure suspending {mount.mount_on}")
        if mount.fstype != "ufs":
            return failure("EINVAL", f"{mount.mount_on} is {mount.fstype}, not UFS")
        if fsid in self._suspended:
            return failure("EBUSY", f"{mount.mount_on} is already suspended")
        if connection.suspended is not None:
            # the kernel suspends, fails to attach a second cdevpriv and resumes
            return failure("EBUSY", "this connection already holds a suspension")
        connection.suspended = fsid
        self._suspended.add(fsid)
        self.events.append(("suspend", fsid))
        if self.on_change is not None:
            self.on_change(fsid, True)
        return ok()

    def _zpool_sync(self, pools: Any) -> Dict[str, Any]:
        if not isinstance(pools, list) or not all(isinstance(p, str) for p in pools):
            return failure("EINVAL", f"pools {pools!r} is not a list of names")
        known = {pool_of(m) for m in self.mounts() if m.fstype == "zfs"}
        for pool in pools:
            if pool not in known:
                return failure("ENOENT", f"cannot open '{pool}': no such pool")
        self.events.append(("zpool_sync", tuple(pools)))
        return ok()
