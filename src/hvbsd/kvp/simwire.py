"""The simulated ``/dev/hv_kvp_dev``: a UNIX SOCK_SEQPACKET socket and its records.

The real device is read and written with read(2)/write(2) of one
``hv_kvp_msg`` and polled for POLLIN (``hv_kvp.c``: ``hv_kvp_dev_daemon_read``,
``hv_kvp_dev_daemon_write``, ``hv_kvp_dev_daemon_poll``). The simulator's
device carries the same messages, one per record (a record arrives whole or
not at all, so the two sides cannot fall out of step). Every record is a u32
kind, a u32 value (little-endian) and a payload::

    driver -> opener  KIND_OPEN     value: open(2)'s errno (0, or EBUSY)
    driver -> opener  KIND_MESSAGE  a request: poll saw POLLIN and the read
                                    returned this whole hv_kvp_msg
    opener -> driver  KIND_WRITE    the bytes of one write(2) (any length; the
                                    driver takes at most one message of them)
    driver -> opener  KIND_WRITTEN  value: that write's errno (0, EINVAL ...)

Connecting is open(2); closing the connection is the last close(2).
"""

from __future__ import annotations

import socket
import struct
from typing import Optional, Tuple

from hvbsd.kvp.protocol import MESSAGE_SIZE

KIND_OPEN = 1
KIND_MESSAGE = 2
KIND_WRITE = 3
KIND_WRITTEN = 4
KINDS = {KIND_OPEN: "OPEN", KIND_MESSAGE: "MESSAGE", KIND_WRITE: "WRITE",
         KIND_WRITTEN: "WRITTEN"}

#: the most payload a record carries (a write may be longer than one message)
MAX_PAYLOAD = 2 * MESSAGE_SIZE
MAX_RECORD = 8 + MAX_PAYLOAD
_HEAD = struct.Struct("<II")
SOCKET_TYPE = socket.SOCK_SEQPACKET


class WireError(ValueError):
    """Bytes that are not one record."""


def encode(kind: int, value: int = 0, payload: bytes = b"") -> bytes:
    if kind not in KINDS or len(payload) > MAX_PAYLOAD or not 0 <= value < 1 << 32:
        raise WireError(f"no record of kind {kind} with value {value} and"
                        f" {len(payload)} bytes")
    return _HEAD.pack(kind, value) + bytes(payload)


def decode(record: bytes) -> Optional[Tuple[int, int, bytes]]:
    """``(kind, value, payload)``, or None when the bytes are not a record."""
    if len(record) < _HEAD.size or len(record) > MAX_RECORD:
        return None
    kind, value = _HEAD.unpack_from(record)
    if kind not in KINDS:
        return None
    return int(kind), int(value), bytes(record[_HEAD.size:])


def device_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, SOCKET_TYPE)
