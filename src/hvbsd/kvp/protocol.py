"""The message the Hyper-V KVP driver exchanges with its userland daemon.

FreeBSD's ``hv_kvp`` driver (``sys/dev/hyperv/utilities/hv_kvp.h``) hands the
daemon one packed ``struct hv_kvp_msg`` per host request, through read(2) and
write(2) on ``/dev/hv_kvp_dev``. Little-endian, packed, 7430 bytes::

    offset size
         0    4  hdr: u8 operation, u8 pool, u16 pad -- or, in an answer,
                 u32 error (a union: the answer's status overwrites op and pool)
         4 7426  body, a union of:
                   get/set   hv_kvp_exchg_msg_value (2572): u32 value_type,
                             u32 key_size, u32 value_size, key[512], value[2048]
                   delete    u32 key_size, key[512]                       (516)
                   enumerate u32 index, hv_kvp_exchg_msg_value            (2576)
                   ip info   hv_kvp_ipaddr_value: u16 adapter_id[128],
                             u8 addr_family, u8 dhcp_enabled, u16 ip_addr[1024],
                             u16 sub_net[1024], u16 gate_way[512],
                             u16 dns_addr[1024]                           (7426)
                   register  version[512]

Between the driver and the daemon every string is UTF-8 and NUL-terminated:
the driver converts the host's UTF-16 on the way in and back
(``hv_kvp_convert_hostmsg_to_usermsg``, ``hv_kvp_convert_usermsg_to_hostmsg``
in ``hv_kvp.c``), and the ``u16`` arrays of the ip info are used as byte
buffers of twice their element count. The host's own form of the two ip
operations is ``struct hv_kvp_ip_msg`` (u8 operation, u8 pool, then the
ip value: no pad, 7428 bytes); :mod:`hvbsd.sim.hyperv_kvp` builds that side.

Everything here is pure data: decoding refuses any frame that is not exactly
one message, and the string accessors never read past their field.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Optional

# hv_kvp.h
MAX_VALUE_SIZE = 2048  # HV_KVP_EXCHANGE_MAX_VALUE_SIZE, bytes with the NUL
MAX_KEY_SIZE = 512  # HV_KVP_EXCHANGE_MAX_KEY_SIZE
MAX_ADAPTER_ID_SIZE = 128  # u16 elements
MAX_IP_ADDR_SIZE = 1024
MAX_GATEWAY_SIZE = 512

REG_SZ = 1  # HV_REG_SZ
REG_U32 = 4
REG_U64 = 8

ADDR_FAMILY_NONE = 0x00
ADDR_FAMILY_IPV4 = 0x01
ADDR_FAMILY_IPV6 = 0x02

#: hv_kvp.h HV_KVP_OP_REGISTER: the daemon's first write (same number as GET_IP_INFO)
OP_REGISTER = 4


class Op(enum.IntEnum):
    """``enum hv_kvp_exchg_op``."""

    GET = 0
    SET = 1
    DELETE = 2
    ENUMERATE = 3
    GET_IP_INFO = 4
    SET_IP_INFO = 5


OP_COUNT = 6


class Pool(enum.IntEnum):
    """``enum hv_kvp_exchg_pool``."""

    EXTERNAL = 0
    GUEST = 1
    AUTO = 2
    AUTO_EXTERNAL = 3
    AUTO_INTERNAL = 4


POOL_COUNT = 5


class Status(enum.IntEnum):
    """The Hyper-V status codes the daemon answers with (hv_utilreg.h, hv_kvp.h)."""

    S_OK = 0x00000000
    E_FAIL = 0x80004005
    S_CONT = 0x80070103  # "no more items": not found, end of an enumeration
    NOT_SUPPORTED = 0x80070032  # HV_ERROR_NOT_SUPPORTED
    MACHINE_LOCKED = 0x800704F7
    DEVICE_NOT_CONNECTED = 0x8007048F
    INVALIDARG = 0x80070057
    GUID_NOTFOUND = 0x80041002


def status_name(value: int) -> str:
    try:
        return Status(value).name
    except ValueError:
        return f"{value:#010x}"


HEADER_SIZE = 4
EXCHANGE_VALUE_FORMAT = f"<III{MAX_KEY_SIZE}s{MAX_VALUE_SIZE}s"
EXCHANGE_VALUE_SIZE = struct.calcsize(EXCHANGE_VALUE_FORMAT)  # 2572
ENUMERATE_SIZE = 4 + EXCHANGE_VALUE_SIZE  # 2576
DELETE_SIZE = 4 + MAX_KEY_SIZE  # 516
REGISTER_SIZE = MAX_KEY_SIZE
IP_VALUE_FORMAT = (f"<{2 * MAX_ADAPTER_ID_SIZE}sBB{2 * MAX_IP_ADDR_SIZE}s"
                   f"{2 * MAX_IP_ADDR_SIZE}s{2 * MAX_GATEWAY_SIZE}s{2 * MAX_IP_ADDR_SIZE}s")
IP_VALUE_SIZE = struct.calcsize(IP_VALUE_FORMAT)  # 7426
BODY_SIZE = max(EXCHANGE_VALUE_SIZE, DELETE_SIZE, ENUMERATE_SIZE, IP_VALUE_SIZE, REGISTER_SIZE)
MESSAGE_SIZE = HEADER_SIZE + BODY_SIZE  # 7430, sizeof(struct hv_kvp_msg)
IP_MESSAGE_SIZE = 2 + IP_VALUE_SIZE  # 7428, sizeof(struct hv_kvp_ip_msg)

_EXCHANGE = struct.Struct(EXCHANGE_VALUE_FORMAT)
_IP_VALUE = struct.Struct(IP_VALUE_FORMAT)
_HEADER = struct.Struct("<BBH")
_ERROR = struct.Struct("<I")

# byte offsets of the ip value's fields (the daemon's UTF-8 view)
IP_FIELDS = {
    "adapter_id": (0, 2 * MAX_ADAPTER_ID_SIZE),
    "ip_addr": (258, 2 * MAX_IP_ADDR_SIZE),
    "sub_net": (258 + 2 * MAX_IP_ADDR_SIZE, 2 * MAX_IP_ADDR_SIZE),
    "gate_way": (258 + 4 * MAX_IP_ADDR_SIZE, 2 * MAX_GATEWAY_SIZE),
    "dns_addr": (258 + 4 * MAX_IP_ADDR_SIZE + 2 * MAX_GATEWAY_SIZE, 2 * MAX_IP_ADDR_SIZE),
}


class ProtocolError(ValueError):
    """A frame that is not one well-formed ``hv_kvp_msg``."""


def cstring(field: bytes) -> bytes:
    """The bytes of a C string field up to its first NUL (all of it when it has none)."""
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def text(field: bytes) -> str:
    """A C string field as text; bytes that are not UTF-8 become U+FFFD."""
    return cstring(field).decode("utf-8", errors="replace")


def fit(data: bytes, size: int) -> bytes:
    """``data`` as a NUL-terminated C string in a ``size``-byte field (cut to fit)."""
    data = cstring(data)[:size - 1]
    return data + bytes(size - len(data))


@dataclass(frozen=True)
class ExchangeValue:
    """``struct hv_kvp_exchg_msg_value`` (get, set, and inside enumerate)."""

    value_type: int
    key_size: int
    value_size: int
    key: bytes  # the whole 512-byte field
    value: bytes  # the whole 2048-byte field

    @property
    def key_bytes(self) -> bytes:
        return cstring(self.key)

    @property
    def value_bytes(self) -> bytes:
        return cstring(self.value)

    def pack(self) -> bytes:
        return _EXCHANGE.pack(self.value_type, self.key_size, self.value_size,
                              fit(self.key, MAX_KEY_SIZE), fit(self.value, MAX_VALUE_SIZE))

    @classmethod
    def unpack(cls, data: bytes) -> ExchangeValue:
        return cls(*_EXCHANGE.unpack_from(data))

    @classmethod
    def of(cls, key: bytes, value: bytes, value_type: int = REG_SZ) -> ExchangeValue:
        """Key and value as the driver hands them to the daemon: sizes count the NUL."""
        key, value = cstring(key)[:MAX_KEY_SIZE - 1], cstring(value)[:MAX_VALUE_SIZE - 1]
        return cls(value_type, len(key) + 1, len(value) + 1, key, value)


@dataclass(frozen=True)
class IpInfo:
    """``struct hv_kvp_ipaddr_value`` in the daemon's UTF-8 form.

    The address lists are what the stock daemon writes: each entry followed
    by ``;`` (``kvp_process_ip_address``), e.g. ``10.0.0.4;fe80::1;``.
    """

    adapter_id: str = ""
    addr_family: int = 0
    dhcp_enabled: int = 0
    ip_addr: str = ""
    sub_net: str = ""
    gate_way: str = ""
    dns_addr: str = ""

    def pack(self) -> bytes:
        fields = {name: fit(getattr(self, name).encode("utf-8", errors="replace"), size)
                  for name, (_, size) in IP_FIELDS.items()}
        return _IP_VALUE.pack(fields["adapter_id"], self.addr_family & 0xFF,
                              self.dhcp_enabled & 0xFF, fields["ip_addr"],
                              fields["sub_net"], fields["gate_way"], fields["dns_addr"])

    @classmethod
    def unpack(cls, data: bytes) -> IpInfo:
        adapter, family, dhcp, ip_addr, sub_net, gate_way, dns = _IP_VALUE.unpack_from(data)
        return cls(text(adapter), family, dhcp, text(ip_addr), text(sub_net),
                   text(gate_way), text(dns))


@dataclass(frozen=True)
class Message:
    """One decoded frame. ``op`` and ``pool`` stay plain ints so anything survives decoding."""

    op: int
    pool: int
    pad: int
    body: bytes

    @property
    def error(self) -> int:
        """The header read as the u32 ``error`` of an answer."""
        return int(_ERROR.unpack(_HEADER.pack(self.op, self.pool, self.pad))[0])

    @property
    def op_name(self) -> str:
        try:
            return Op(self.op).name
        except ValueError:
            return f"op {self.op}"

    def exchange(self) -> ExchangeValue:
        """The body as get/set data."""
        return ExchangeValue.unpack(self.body)

    def enumerate_index(self) -> int:
        return int(struct.unpack_from("<I", self.body)[0])

    def delete_key(self) -> tuple[int, bytes]:
        key_size, key = struct.unpack_from(f"<I{MAX_KEY_SIZE}s", self.body)
        return int(key_size), key

    def ip_info(self) -> IpInfo:
        return IpInfo.unpack(self.body)

    def encode(self) -> bytes:
        return _HEADER.pack(self.op & 0xFF, self.pool & 0xFF, self.pad & 0xFFFF) + self.body


def decode(frame: bytes) -> Message:
    """Unpack one frame; anything but exactly MESSAGE_SIZE bytes is a ProtocolError."""
    if len(frame) != MESSAGE_SIZE:
        raise ProtocolError(f"frame of {len(frame)} bytes, an hv_kvp_msg has {MESSAGE_SIZE}")
    op, pool, pad = _HEADER.unpack_from(frame)
    return Message(op, pool, pad, bytes(frame[HEADER_SIZE:]))


def body(data: bytes = b"") -> bytes:
    """``data`` at the start of a zeroed body."""
    if len(data) > BODY_SIZE:
        raise ProtocolError(f"a body of {len(data)} bytes does not fit {BODY_SIZE}")
    return bytes(data) + bytes(BODY_SIZE - len(data))


def request(op: int, pool: int = 0, payload: bytes = b"") -> bytes:
    """A whole message with ``payload`` at the start of the body (what the driver sends)."""
    for name, value, limit in (("op", op, 256), ("pool", pool, 256)):
        if not 0 <= int(value) < limit:
            raise ProtocolError(f"{name} {value} does not fit the message header")
    return _HEADER.pack(int(op), int(pool), 0) + body(payload)


def answer(error: int, payload: bytes) -> bytes:
    """The daemon's answer: ``error`` in the header's u32, then the body."""
    if not 0 <= int(error) < 1 << 32:
        raise ProtocolError(f"status {error} does not fit the u32 error")
    return _ERROR.pack(int(error)) + body(payload)


def answer_error(frame: bytes) -> int:
    """The u32 status of an answer frame."""
    return int(_ERROR.unpack_from(frame)[0])


def register() -> bytes:
    """The daemon's registration: a zeroed message whose operation is HV_KVP_OP_REGISTER."""
    return request(OP_REGISTER)


def enumerate_payload(index: int, data: ExchangeValue) -> bytes:
    return struct.pack("<I", index & 0xFFFFFFFF) + data.pack()


def delete_payload(key: bytes) -> bytes:
    key = cstring(key)[:MAX_KEY_SIZE - 1]
    return struct.pack("<I", len(key) + 1) + fit(key, MAX_KEY_SIZE)


def partial_op(fragment: bytes) -> Optional[int]:
    """The operation of a short frame, if it has one."""
    return fragment[0] if fragment else None
