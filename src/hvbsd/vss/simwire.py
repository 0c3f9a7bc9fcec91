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
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import stat
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from hvbsd.vss.mounts import Fsid, Mount

MAX_LINE = 1 << 20

MountSource = Union[Iterable[Mount], Callable[[], Iterable[Mount]]]
ChangeCallback = Callable[[Fsid, bool], None]


class WireError(ValueError):
    """A request or reply that does not follow the wire format."""


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
