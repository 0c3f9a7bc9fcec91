"""How requests reach the daemon: the VSS character devices, or a simulator's socket.

``DeviceChannel`` is the real thing: ``/dev/hv_fsvss_dev`` (or the application
channel ``/dev/hv_appvss_dev``) opened read-write. The driver allows one opener
(a second open fails with EBUSY), signals a pending request with POLLIN (the
device has no kqueue filter, so it is polled), hands the request out through
``IOCHVVSSREAD`` and takes the answer through ``IOCHVVSSWRITE``.

``SocketChannel`` carries the same 64-byte frames over a UNIX stream socket
that the simulated kernel listens on at the device path. The protocol:

1. The daemon connects. This stands for open(2).
2. The kernel side sends one frame with op NONE: status 0 means "you are
   registered", status 1 means "busy, another opener holds the device"
   (EBUSY from open) and the kernel side then closes the connection.
3. From then on the kernel side sends request frames (op CHECK, FREEZE or
   THAW, a msgid) and the daemon answers each with one frame carrying the
   same op and msgid and status 0 or 1 (the IOCHVVSSWRITE equivalent).
4. Either side closing the connection is close(2) of the device.

Frames are read from a byte stream, so a frame may arrive in pieces; a
fragment that is not completed within ``SHORT_FRAME_SECONDS`` is reported as
a short frame and dropped.
"""

from __future__ import annotations

import abc
import errno
import fcntl
import os
import select
import socket
import stat
import time
from dataclasses import dataclass
from typing import List, Optional, Union

from hvbsd.vss import protocol
from hvbsd.vss.protocol import MESSAGE_SIZE, Message

FS_DEVICE = "/dev/hv_fsvss_dev"
APP_DEVICE = "/dev/hv_appvss_dev"

HANDSHAKE_SECONDS = 5.0
SHORT_FRAME_SECONDS = 1.0

READ_EVENTS = select.POLLIN | select.POLLPRI
HANGUP_EVENTS = select.POLLHUP | select.POLLERR | select.POLLNVAL


class ChannelError(Exception):
    """The channel cannot be used; the message names the device and the reason."""


class ChannelBusy(ChannelError):
    """Another process has the device open (EBUSY from open(2))."""


class ChannelClosed(ChannelError):
    """The kernel side went away."""


@dataclass(frozen=True)
class ShortFrame:
    """Bytes that never became a whole frame."""

    data: bytes

    @property
    def msgid(self) -> Optional[int]:
        return protocol.partial_msgid(self.data)


Received = Union[Message, ShortFrame]


class Channel(abc.ABC):
    """One device the daemon serves: ``fs`` (filesystems) or ``app`` (hooks)."""

    def __init__(self, path: str, role: str) -> None:
        self.path = path
        self.role = role

    @abc.abstractmethod
    def fileno(self) -> int: ...

    @abc.abstractmethod
    def receive(self) -> List[Received]:
        """Read what is ready after poll reported the channel readable."""

    @abc.abstractmethod
    def send(self, frame: bytes) -> None:
        """Hand one 64-byte answer to the kernel."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once the kernel side is gone (after ``receive`` handed over the rest)."""
        return False

    def deadline(self) -> Optional[float]:
        """Monotonic time at which ``expire`` has something to report, if any."""
        return None

    def expire(self, now: float) -> List[ShortFrame]:
        """Short frames whose time ran out by ``now``."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, role={self.role!r})"


class DeviceChannel(Channel):
    """``/dev/hv_fsvss_dev`` or ``/dev/hv_appvss_dev`` with ioctl read/write."""

    def __init__(self, path: str, role: str) -> None:
        super().__init__(path, role)
        try:
            self._fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise ChannelBusy(
                    f"{path}: device busy: another VSS daemon (the stock hv_vss_daemon"
                    " or a second hvbsd_vssd) already has it open") from None
            raise ChannelError(f"{path}: cannot open: {exc.strerror}") from None

    def fileno(self) -> int:
        return self._fd

    def receive(self) -> List[Received]:
        buffer = bytearray(MESSAGE_SIZE)
        try:
            fcntl.ioctl(self._fd, protocol.IOCHVVSSREAD, buffer, True)
        except OSError as exc:
            raise ChannelError(f"{self.path}: IOCHVVSSREAD failed: {exc.strerror}") from None
        return [protocol.decode(bytes(buffer))]

    def send(self, frame: bytes) -> None:
        try:
            fcntl.ioctl(self._fd, protocol.IOCHVVSSWRITE, frame)
        except OSError as exc:
            raise ChannelError(f"{self.path}: IOCHVVSSWRITE failed: {exc.strerror}") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SocketChannel(Channel):
    """The simulator's kernel: 64-byte frames over a UNIX stream socket."""

    def __init__(self, path: str, role: str,
                 handshake_seconds: float = HANDSHAKE_SECONDS) -> None:
        super().__init__(path, role)
        self._pending = b""
        self._pending_since = 0.0
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(handshake_seconds)
            sock.connect(path)
            first = _recv_exactly(sock, MESSAGE_SIZE)
        except socket.timeout:
            sock.close()
            raise ChannelError(f"{path}: no handshake from the kernel side within"
                               f" {handshake_seconds:g} s") from None
        except OSError as exc:
            sock.close()
            raise ChannelError(f"{path}: cannot connect: {exc.strerror}") from None
        if len(first) < MESSAGE_SIZE:
            sock.close()
            raise ChannelError(f"{path}: the kernel side closed the connection"
                               " before its handshake")
        message = protocol.decode(first)
        if message.op != protocol.Op.NONE:
            sock.close()
            raise ChannelError(f"{path}: handshake frame has {message.op_name},"
                               " expected op NONE")
        if message.status == protocol.HANDSHAKE_BUSY:
            sock.close()
            raise ChannelBusy(f"{path}: device busy: another VSS daemon already"
                              " has it open")
        if message.status != protocol.HANDSHAKE_REGISTERED:
            sock.close()
            raise ChannelError(f"{path}: handshake status {message.status} is"
                               " neither registered (0) nor busy (1)")
        sock.setblocking(False)
        self._sock: Optional[socket.socket] = sock

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def receive(self) -> List[Received]:
        if self._sock is None:
            raise ChannelClosed(f"{self.path}: channel is closed")
        closed = False
        chunks = []
        while True:
            try:
                chunk = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        data = self._pending + b"".join(chunks)
        whole = len(data) - len(data) % MESSAGE_SIZE
        received: List[Received] = [protocol.decode(data[offset:offset + MESSAGE_SIZE])
                                    for offset in range(0, whole, MESSAGE_SIZE)]
        rest = data[whole:]
        if rest and rest != self._pending:
            self._pending_since = time.monotonic()
        self._pending = rest
        if closed:
            if self._pending:
                received.append(ShortFrame(self._pending))
                self._pending = b""
            self._sock.close()
            self._sock = None
            if received:
                # hand over what arrived first; ``closed`` tells the caller the rest
                return received
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        return received

    @property
    def closed(self) -> bool:
        return self._sock is None

    def deadline(self) -> Optional[float]:
        if not self._pending:
            return None
        return self._pending_since + SHORT_FRAME_SECONDS

    def expire(self, now: float) -> List[ShortFrame]:
        if self._pending and now >= self._pending_since + SHORT_FRAME_SECONDS:
            fragment, self._pending = self._pending, b""
            return [ShortFrame(fragment)]
        return []

    def send(self, frame: bytes) -> None:
        if self._sock is None:
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        view = memoryview(frame)
        while view:
            try:
                sent = self._sock.send(view)
            except (BlockingIOError, InterruptedError):
                select.select([], [self._sock], [], 1.0)
                continue
            except OSError as exc:
                raise ChannelClosed(f"{self.path}: cannot answer: {exc.strerror}") from None
            view = view[sent:]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def open_channel(path: str, role: str) -> Channel:
    """A SocketChannel when ``path`` is a UNIX socket, a DeviceChannel otherwise."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ChannelError(f"{path}: no such device (is the hv_vss driver loaded?)") from None
    except OSError as exc:
        raise ChannelError(f"{path}: cannot stat: {exc.strerror}") from None
    if stat.S_ISSOCK(mode):
        return SocketChannel(path, role)
    return DeviceChannel(path, role)
