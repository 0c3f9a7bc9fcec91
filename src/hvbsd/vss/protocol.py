"""The message the Hyper-V VSS driver exchanges with its userland daemon.

FreeBSD's ``hv_vss`` driver (``sys/dev/hyperv/utilities/hv_snapshot.h``) hands
the daemon one ``struct hv_vss_opt_msg`` per host request::

    offset size field
         0    4 opt       u32  operation (Op)
         4    4 status    u32  0 success, 1 fail (Status)
         8    8 msgid     u64  transaction id, echoed in the answer
        16   48 reserved       zero

Little-endian, 64 bytes, no padding: ``struct`` format ``'<IIQ48s'``.

On a real guest the frames travel through ioctls on ``/dev/hv_fsvss_dev``:
``IOCHVVSSREAD`` copies the next request out, ``IOCHVVSSWRITE`` copies the
answer in. The simulator carries the same frames over a UNIX stream socket
(see :mod:`hvbsd.vss.channel` for the handshake that stands in for open(2)).

The ioctl numbers are computed here with the arithmetic of
``sys/sys/ioccom.h`` rather than typed in, so they can be checked against it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

MESSAGE_FORMAT = "<IIQ48s"
MESSAGE_SIZE = struct.calcsize(MESSAGE_FORMAT)
RESERVED_SIZE = 48
_MESSAGE = struct.Struct(MESSAGE_FORMAT)
_ZERO_RESERVED = bytes(RESERVED_SIZE)

#: the prefix of a frame that holds op, status and msgid
HEADER_SIZE = 16


class Op(enum.IntEnum):
    """``enum hv_vss_op_t``: what the host asks for."""

    NONE = 0
    CHECK = 1
    FREEZE = 2
    THAW = 3
    COUNT = 4


class Status(enum.IntEnum):
    """``VSS_SUCCESS`` / ``VSS_FAIL``."""

    SUCCESS = 0
    FAIL = 1


class ProtocolError(ValueError):
    """A frame that is not a well-formed ``hv_vss_opt_msg``."""


@dataclass(frozen=True)
class Message:
    """One decoded frame. ``op`` stays a plain int so unknown ops survive decoding."""

    op: int
    status: int
    msgid: int
    reserved: bytes = _ZERO_RESERVED

    @property
    def op_name(self) -> str:
        try:
            return Op(self.op).name
        except ValueError:
            return f"op {self.op}"

    def reply(self, status: Status) -> bytes:
        """The answer to this request: same op and msgid, the given status."""
        return encode(self.op, status, self.msgid)


def encode(op: int, status: int, msgid: int) -> bytes:
    """Pack one 64-byte frame; the reserved bytes are always zero."""
    for name, value, limit in (("op", op, 1 << 32), ("status", status, 1 << 32),
                               ("msgid", msgid, 1 << 64)):
        if not 0 <= int(value) < limit:
            raise ProtocolError(f"{name} {value} does not fit the message field")
    return _MESSAGE.pack(int(op), int(status), int(msgid), _ZERO_RESERVED)


def decode(frame: bytes) -> Message:
    """Unpack one frame; anything but exactly 64 bytes is a ProtocolError."""
    if len(frame) != MESSAGE_SIZE:
        raise ProtocolError(
            f"frame of {len(frame)} bytes, an hv_vss_opt_msg has {MESSAGE_SIZE}")
    op, status, msgid, reserved = _MESSAGE.unpack(frame)
    return Message(op, status, msgid, reserved)


def partial_msgid(fragment: bytes) -> int | None:
    """The msgid of a short frame, if the fragment is long enough to hold it."""
    if len(fragment) < HEADER_SIZE:
        return None
    return int(struct.unpack_from("<Q", fragment, 8)[0])


# sys/sys/ioccom.h
IOCPARM_SHIFT = 13
IOCPARM_MASK = (1 << IOCPARM_SHIFT) - 1
IOC_VOID = 0x20000000
IOC_OUT = 0x40000000
IOC_IN = 0x80000000


def _ioc(direction: int, group: str, number: int, length: int) -> int:
    return direction | ((length & IOCPARM_MASK) << 16) | (ord(group) << 8) | number


def io(group: str, number: int) -> int:
    """``_IO(g, n)``: no argument."""
    return _ioc(IOC_VOID, group, number, 0)


def ior(group: str, number: int, length: int) -> int:
    """``_IOR(g, n, t)``: the kernel copies ``length`` bytes out."""
    return _ioc(IOC_OUT, group, number, length)


def iow(group: str, number: int, length: int) -> int:
    """``_IOW(g, n, t)``: the kernel copies ``length`` bytes in."""
    return _ioc(IOC_IN, group, number, length)


#: ``sizeof(fsid_t)``: two int32
FSID_SIZE = struct.calcsize("<2i")

IOCHVVSSREAD = ior("v", 2, MESSAGE_SIZE)
IOCHVVSSWRITE = iow("v", 3, MESSAGE_SIZE)
UFSSUSPEND = iow("U", 1, FSID_SIZE)
UFSRESUME = io("U", 2)

#: the handshake statuses of the socket channel's first frame (op NONE)
HANDSHAKE_REGISTERED = 0
HANDSHAKE_BUSY = 1


def handshake(busy: bool) -> bytes:
    """The first frame a simulated kernel sends after accepting a connection."""
    return encode(Op.NONE, HANDSHAKE_BUSY if busy else HANDSHAKE_REGISTERED, 0)
