"""How requests reach the daemon: the VSS character devices, or a simulator's socket.

``DeviceChannel`` is the real thing: ``/dev/hv_fsvss_dev`` (or the application
channel ``/dev/hv_appvss_dev``) opened read-write. The driver allows one opener
(a second open fails with EBUSY), signals a pending request with POLLIN (the
device has no kqueue filter, so it is polled), hands the request out through
``IOCHVVSSREAD`` and takes the answer through ``IOCHVVSSWRITE``.

``SocketChannel`` is the simulator's device: a UNIX ``SOCK_SEQPACKET``
socket at the device path, carrying records that each hold one whole
64-byte message (the wire is described in :mod:`hvbsd.vss.simwire`).
Connecting stands for open(2) and the first record says whether the opener
is registered or got EBUSY. Afterwards the kernel side rings POLLIN when a
request waits, ``receive`` then does the read ioctl (one record out, one
back: the request, or status 1 and msgid 0 when nothing waits any more) and
``send`` does the write ioctl. A record is delivered whole or not at all, so
the two sides cannot fall out of step; a record the kernel side should never
send (wrong size or kind) is handed over as a ``ShortFrame`` for the daemon to
report. Every write waits at most ``WRITE_SECONDS``: a kernel side that stops
reading raises ChannelError and never holds up the caller.
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

from hvbsd.vss import protocol, simwire
from hvbsd.vss.protocol import MESSAGE_SIZE, Message

FS_DEVICE = "/dev/hv_fsvss_dev"
APP_DEVICE = "/dev/hv_appvss_dev"

HANDSHAKE_SECONDS = 5.0
#: how long one write to the simulated device may wait for room
WRITE_SECONDS = 2.0
#: how long ``receive`` waits for the result of its read ioctl
READ_SECONDS = 1.0
#: when a read ioctl could not go out, how soon to try again
RETRY_SECONDS = 0.5
#: records ``receive`` takes at once (the rest wake poll again)
MAX_RECORDS_PER_RECEIVE = 64
#: the bytes of a malformed record that are kept for the daemon's report
MAX_SHORT_FRAME = 256

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

    def expire(self, now: float) -> List[Received]:
        """What is due by ``now`` (``deadline``) without the descriptor turning readable."""
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
    """The simulator's device: one message per SOCK_SEQPACKET record."""

    def __init__(self, path: str, role: str,
                 handshake_seconds: float = HANDSHAKE_SECONDS,
                 write_seconds: float = WRITE_SECONDS) -> None:
        super().__init__(path, role)
        self.write_seconds = write_seconds
        self._doorbells = 0  # POLLIN records not yet followed by a read
        self._reading = False  # a read ioctl went out, its result has not come back
        self._retry_at: Optional[float] = None
        self._stalled = False  # the last write timed out
        sock = simwire.device_socket()
        try:
            sock.settimeout(handshake_seconds)
            sock.connect(path)
            first = sock.recv(simwire.DEVICE_RECORD_SIZE + 1)
        except socket.timeout:
            sock.close()
            raise ChannelError(f"{path}: no handshake from the kernel side within"
                               f" {handshake_seconds:g} s") from None
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EPROTOTYPE:
                raise ChannelError(f"{path}: not a simulated VSS device (a socket of"
                                   " another type)") from None
            raise ChannelError(f"{path}: cannot connect: {exc.strerror}") from None
        if not first:
            sock.close()
            raise ChannelError(f"{path}: the kernel side closed the connection"
                               " before its handshake")
        decoded = simwire.decode_record(first)
        if decoded is None or decoded[0] != simwire.KIND_OPEN:
            sock.close()
            raise ChannelError(f"{path}: the kernel side's first record"
                               f" ({len(first)} bytes) is not the result of open")
        status = decoded[1].status
        if status == errno.EBUSY:
            sock.close()
            raise ChannelBusy(f"{path}: device busy: another VSS daemon already"
                              " has it open")
        if status != 0:
            sock.close()
            raise ChannelError(f"{path}: open failed with status {status}")
        sock.setblocking(False)
        self._sock: Optional[socket.socket] = sock

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def receive(self) -> List[Received]:
        if self._sock is None:
            raise ChannelClosed(f"{self.path}: channel is closed")
        received: List[Received] = []
        closed = self._drain(received)
        # the read ioctl for each POLLIN; its result usually follows at once
        budget = time.monotonic() + READ_SECONDS
        while not closed and self._doorbells and not self._reading:
            if not self._ask_to_read():
                break
            while self._reading and not closed:
                left = budget - time.monotonic()
                if left <= 0:
                    break  # the result wakes poll when it comes
                readable, _, _ = select.select([self._sock], [], [], left)
                if not readable:
                    break
                closed = self._drain(received)
            if self._reading:
                break
        if closed:
            assert self._sock is not None
            self._sock.close()
            self._sock = None
            if received:
                # hand over what arrived first; ``closed`` tells the caller the rest
                return received
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        return received

    def _drain(self, received: List[Received]) -> bool:
        """Take every record that is ready; True once the kernel side is gone."""
        assert self._sock is not None
        for _ in range(MAX_RECORDS_PER_RECEIVE):
            try:
                record = self._sock.recv(simwire.DEVICE_RECORD_SIZE + 1)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True
            if not record:
                return True
            decoded = simwire.decode_record(record)
            if decoded is None:
                received.append(ShortFrame(record[:MAX_SHORT_FRAME]))
            elif decoded[0] == simwire.KIND_POLLIN:
                self._doorbells += 1
            elif decoded[0] == simwire.KIND_READ and self._reading:
                self._reading = False
                received.append(decoded[1])
            else:
                received.append(ShortFrame(record[:MAX_SHORT_FRAME]))
        return False

    def _ask_to_read(self) -> bool:
        """Send the read ioctl; False (retried later) when it cannot go out in time."""
        try:
            self._write(simwire.encode_record(simwire.KIND_READ))
        except ChannelError:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        self._doorbells -= 1
        self._reading = True
        self._retry_at = None
        return True

    @property
    def closed(self) -> bool:
        return self._sock is None

    def deadline(self) -> Optional[float]:
        if self._sock is None or not self._doorbells or self._reading:
            return None
        return self._retry_at if self._retry_at is not None else time.monotonic()

    def expire(self, now: float) -> List[Received]:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        try:
            return self.receive()
        except ChannelClosed:
            return []

    def send(self, frame: bytes) -> None:
        if len(frame) != MESSAGE_SIZE:
            raise ChannelError(f"{self.path}: an answer is {MESSAGE_SIZE} bytes,"
                               f" not {len(frame)}")
        self._write(simwire.encode_record(simwire.KIND_WRITE, frame))

    def _write(self, record: bytes) -> None:
        """One whole record, or ChannelError within ``write_seconds``."""
        if self._sock is None:
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        # once a write timed out, later ones wait only while the peer drains again:
        # a peer that stopped reading costs the caller write_seconds once, not per write
        deadline = time.monotonic() + (0.0 if self._stalled else self.write_seconds)
        while True:
            try:
                self._sock.send(record)
                self._stalled = False
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                raise ChannelClosed(f"{self.path}: cannot write: {exc.strerror}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                self._stalled = True
                raise ChannelError(f"{self.path}: the kernel side took nothing for"
                                   f" {self.write_seconds:g} s: record not delivered")
            select.select([], [self._sock], [], left)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


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
