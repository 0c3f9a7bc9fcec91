"""How requests reach the daemon: ``/dev/hv_kvp_dev``, or a simulator's socket.

``DeviceChannel`` is the real device (``hv_kvp.c``): one opener at a time
(``hv_kvp_dev_open`` returns ``-EBUSY`` to a second one, so its errno may
arrive as 16 or -16), the first write must be the registration
(``HV_KVP_OP_REGISTER``, else EINVAL), a read before it fails with EPERM,
poll reports POLLIN while a request waits (``daemon_busy``), a read copies
the request out and a write hands the answer in.

``SocketChannel`` is the simulator's device (:mod:`hvbsd.kvp.simwire`).
Both give the daemon the same three calls: ``receive`` (the request waiting,
as raw bytes), ``send`` (an answer; returns the write's errno) and
``fileno`` for poll. No call waits longer than ``WRITE_SECONDS``.
"""

from __future__ import annotations

import abc
import collections
import errno
import os
import select
import socket
import stat
import time
from typing import Deque, Optional

from hvbsd.kvp import protocol, simwire

DEVICE = "/dev/hv_kvp_dev"
HANDSHAKE_SECONDS = 5.0
WRITE_SECONDS = 2.0
#: what one receive takes of a record that is not a request (kept for the log)
MAX_KEPT = 256


class ChannelError(Exception):
    """The channel cannot be used; the message names the device and why."""


class ChannelBusy(ChannelError):
    """Another process has the device open."""


class ChannelClosed(ChannelError):
    """The kernel side went away."""


class Channel(abc.ABC):
    def __init__(self, path: str) -> None:
        self.path = path

    @abc.abstractmethod
    def fileno(self) -> int: ...

    @abc.abstractmethod
    def receive(self) -> Optional[bytes]:
        """The request that made poll report POLLIN (any length), or None."""

    @abc.abstractmethod
    def send(self, frame: bytes) -> int:
        """Write ``frame``; the write's errno (0 when it was taken)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    def pending(self) -> bool:
        """A request already taken in (poll will not report it again)."""
        return False

    def register(self) -> None:
        """Send HV_KVP_OP_REGISTER; ChannelError when the driver refuses it."""
        status = self.send(protocol.register())
        if status:
            raise ChannelError(f"{self.path}: the driver refused the registration:"
                               f" {os.strerror(status)}")


class DeviceChannel(Channel):
    """``/dev/hv_kvp_dev`` with pread(2)/pwrite(2) at offset 0.

    Offset 0 matters: ``hv_kvp_dev_daemon_read`` copies
    ``BUFFERSIZE + 1 - uio_offset`` bytes at most, and a plain read(2) of a
    character device advances the file offset, so a second read(2) would get
    one byte. The stock daemon uses pread/pwrite at 0 for that reason.
    """

    def __init__(self, path: str = DEVICE) -> None:
        super().__init__(path)
        try:
            self._fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno in (errno.EBUSY, -errno.EBUSY):
                raise ChannelBusy(f"{path}: device busy: another KVP daemon (the stock"
                                  " hv_kvp_daemon or a second hvbsd_kvpd) has it open"
                                  ) from None
            raise ChannelError(f"{path}: cannot open: {exc.strerror}") from None

    def fileno(self) -> int:
        return self._fd

    def receive(self) -> Optional[bytes]:
        try:
            return os.pread(self._fd, protocol.MESSAGE_SIZE, 0)
        except OSError as exc:
            raise ChannelError(f"{self.path}: read failed: {exc.strerror}") from None

    def send(self, frame: bytes) -> int:
        try:
            os.pwrite(self._fd, frame, 0)
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SocketChannel(Channel):
    """The simulator's device: one record per message (:mod:`hvbsd.kvp.simwire`)."""

    def __init__(self, path: str, handshake_seconds: float = HANDSHAKE_SECONDS) -> None:
        super().__init__(path)
        self._waiting: Deque[bytes] = collections.deque()
        sock = simwire.device_socket()
        try:
            sock.settimeout(handshake_seconds)
            sock.connect(path)
            first = sock.recv(simwire.MAX_RECORD + 1)
        except socket.timeout:
            sock.close()
            raise ChannelError(f"{path}: no answer to open within {handshake_seconds:g} s"
                               ) from None
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EPROTOTYPE:
                raise ChannelError(f"{path}: not a simulated KVP device") from None
            raise ChannelError(f"{path}: cannot connect: {exc.strerror}") from None
        decoded = simwire.decode(first)
        if decoded is None or decoded[0] != simwire.KIND_OPEN:
            sock.close()
            raise ChannelError(f"{path}: the kernel side's first record ({len(first)}"
                               " bytes) is not the result of open")
        if decoded[1] == errno.EBUSY:
            sock.close()
            raise ChannelBusy(f"{path}: device busy: another KVP daemon has it open")
        if decoded[1] != 0:
            sock.close()
            raise ChannelError(f"{path}: open failed: {os.strerror(decoded[1])}")
        sock.setblocking(False)
        self._sock: Optional[socket.socket] = sock

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def pending(self) -> bool:
        return bool(self._waiting)

    def receive(self) -> Optional[bytes]:
        if self._waiting:
            return self._waiting.popleft()
        record = self._recv()
        if record is None:
            return None
        decoded = simwire.decode(record)
        if decoded is None or decoded[0] != simwire.KIND_MESSAGE:
            return record[:MAX_KEPT] if decoded is None else decoded[2][:MAX_KEPT]
        return decoded[2]

    def _recv(self) -> Optional[bytes]:
        if self._sock is None:
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        try:
            record = self._sock.recv(simwire.MAX_RECORD + 1)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self.close()
            raise ChannelClosed(f"{self.path}: {exc.strerror}") from None
        if not record:
            self.close()
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        return record

    def send(self, frame: bytes) -> int:
        if self._sock is None:
            raise ChannelClosed(f"{self.path}: the kernel side closed the channel")
        deadline = time.monotonic() + WRITE_SECONDS
        record = simwire.encode(simwire.KIND_WRITE, 0, frame[:simwire.MAX_PAYLOAD])
        while True:
            try:
                self._sock.send(record)
                break
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                raise ChannelClosed(f"{self.path}: cannot write: {exc.strerror}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelError(f"{self.path}: the kernel side took nothing for"
                                   f" {WRITE_SECONDS:g} s")
            select.select([], [self._sock], [], left)
        while True:
            # a result already there counts even past the deadline (a stopped process)
            left = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._sock], [], [], left)
            if not readable:
                if time.monotonic() >= deadline:
                    raise ChannelError(f"{self.path}: no result of the write within"
                                       f" {WRITE_SECONDS:g} s")
                continue
            got = self._recv()
            if got is None:
                continue
            decoded = simwire.decode(got)
            if decoded is not None and decoded[0] == simwire.KIND_WRITTEN:
                return decoded[1]
            if decoded is not None and decoded[0] == simwire.KIND_MESSAGE:
                self._waiting.append(decoded[2])

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def open_channel(path: str) -> Channel:
    """A SocketChannel when ``path`` is a UNIX socket, a DeviceChannel otherwise."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ChannelError(f"{path}: no such device (is the hv_kvp driver loaded?)") from None
    except OSError as exc:
        raise ChannelError(f"{path}: cannot stat: {exc.strerror}") from None
    if stat.S_ISSOCK(mode):
        return SocketChannel(path)
    return DeviceChannel(path)
