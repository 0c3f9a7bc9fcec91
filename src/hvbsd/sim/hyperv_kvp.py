"""The guest kernel's ``hv_kvp`` driver, simulated, and the host side of KVP.

``KvpDriver`` is the kernel side of ``/dev/hv_kvp_dev`` after FreeBSD's
``sys/dev/hyperv/utilities/hv_kvp.c`` (each rule names its function). The
device is a UNIX ``SOCK_SEQPACKET`` socket whose records are described in
:mod:`hvbsd.kvp.simwire`:

- one opener at a time; a second open fails with EBUSY (``hv_kvp_dev_open``
  returns ``-EBUSY``); the opener's pid is remembered (``daemon_task``) and
  ``detach`` kills it; close clears ``register_done`` (``hv_kvp_dev_close``);
- the first write must be a message whose operation is
  ``HV_KVP_OP_REGISTER``, otherwise it fails with EINVAL
  (``hv_kvp_dev_daemon_write``); until then the host's messages are not read:
  they wait in the VMBus ring, unanswered (``hv_kvp_callback``), and the
  registration processes them;
- one transaction at a time: a request is handed to the daemon only when it
  is not busy with the previous one (``daemon_busy``); then the driver waits
  ``timeout`` (5 s, ``tsleep(..., 5 * hz)``) and fails the request to the host
  with HV_E_FAIL if no answer came (``hv_kvp_process_request``); a request
  that found the daemon still busy is never handed over and fails the same
  way; an answer after the timeout is dropped (``req_timed_out``) and only
  clears ``daemon_busy``;
- a write takes at most one message of what was written (``MIN(resid,
  BUFFERSIZE)``); the answer's u32 ``error`` is the host's status; the body is
  converted back (``hv_kvp_convert_usermsg_to_hostmsg``) and a conversion
  failure (an unknown operation) makes the write return EINVAL although the
  host was answered;
- host to daemon, UTF-16 becomes UTF-8 with ``unicode.h``'s rules, sizes and
  truncations (``hv_kvp_convert_hostmsg_to_usermsg``); for SET_IP_INFO the
  adapter's GUID is replaced by the name of the hn whose VMBus channel has
  that instance GUID (``hv_kvp_convert_utf16_ipinfo_to_utf8``);
- the version negotiation is answered by the driver itself (``negotiate``).

The host side (``host_*`` builders, ``decode_*``) speaks the host's form:
``hv_kvp_msg`` with UTF-16 strings and, for the two ip operations,
``hv_kvp_ip_msg`` (u8 operation, u8 pool, the ip value: no pad).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hvbsd.kvp import protocol, simwire
from hvbsd.kvp.protocol import (
    IP_FIELDS,
    MAX_ADAPTER_ID_SIZE,
    MAX_GATEWAY_SIZE,
    MAX_IP_ADDR_SIZE,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    MESSAGE_SIZE,
    REG_SZ,
    REG_U32,
    REG_U64,
    Op,
)
from hvbsd.sim.hyperv_vss import Loop, bind_unix, peer_pid

LOG = logging.getLogger("hvbsd.sim.hyperv_kvp")

DEVICE_NAME = "hv_kvp_dev"
DAEMON_TIMEOUT = 5.0  # hv_kvp.c: tsleep(sc, 0, "kvpworkitem", 5 * hz)
RING_SLOTS = 64
MAX_EVENTS = 500
MAX_RECORDS_PER_WAKEUP = 64
KVP_FWVER = (3, 0)  # hv_kvp.c KVP_FWVER_MAJOR
KVP_MSGVER = (4, 0)  # KVP_MSGVER_MAJOR

HV_S_OK = 0x00000000
HV_E_FAIL = 0x80004005

#: the namespace of the simulated hn channels' instance GUIDs
GUID_NAMESPACE = uuid.UUID("6e2a8b1c-93f4-4c55-8a1e-0d5b7c2f9a41")

Answer = Callable[[int, bytes], None]


# -- unicode.h ------------------------------------------------------------------------


def utf16_to_utf8(units: Sequence[int], dst_len: int) -> Tuple[bytes, int]:
    """``utf16_to_utf8`` of unicode.h: (the bytes written, the count it returns).

    Output stops once ``dst_len`` would be passed, but the count goes on; a
    surrogate pair is never accepted (unicode.h tests the same unit twice), so
    characters outside the BMP are dropped, and so are U+F800-U+FFFF: its
    surrogate test ``(c & 0xdc00) == 0xd800`` (or ``0xdc00``) matches them too.
    """
    out = bytearray()
    count = 0
    writing = True
    for unit in units:
        if unit < 0x80:
            encoded = bytes([unit])
        elif unit < 0x800:
            encoded = bytes([0xC0 | (unit >> 6), 0x80 | (unit & 0x3F)])
        elif (unit & 0xDC00) in (0xD800, 0xDC00):
            continue  # error++
        else:
            encoded = bytes([0xE0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3F),
                             0x80 | (unit & 0x3F)])
        if count > dst_len - len(encoded):
            writing = False  # CHECK_LENGTH: dst = NULL
        if writing:
            out += encoded
        count += len(encoded)
    return bytes(out), count


def utf8_to_utf16(data: bytes, dst_len: int) -> Tuple[List[int], int]:
    """``utf8_to_utf16`` with the flags hv_kvp.c passes (1: the Latin-1 fallback is on)."""
    units: List[int] = []
    count = 0
    position = 0

    def cont(index: int) -> bool:
        return index < len(data) and (data[index] & 0xC0) == 0x80

    while position < len(data):
        byte = data[position]
        produced: List[int]
        if byte < 0x80:
            produced = [byte]
            position += 1
        elif not cont(position + 1) and byte >= 0xA0:
            produced = [byte]  # not UTF-8: taken as ISO 8859-1
            position += 1
        elif byte < 0xC0 or byte >= 0xF5:
            position += 1
            continue
        elif byte < 0xE0:
            if not cont(position + 1):
                position += 1
                continue
            value = ((byte & 0x3F) << 6) | (data[position + 1] & 0x3F)
            position += 2
            if value < 0x80:
                continue
            produced = [value]
        elif byte < 0xF0:
            if not (cont(position + 1) and cont(position + 2)):
                position += 1
                continue
            value = ((byte & 0x0F) << 12) | ((data[position + 1] & 0x3F) << 6) | (
                data[position + 2] & 0x3F)
            position += 3
            if value < 0x800 or (value & 0xDF00) == 0xD800:
                continue
            produced = [value]
        else:
            if not (cont(position + 1) and cont(position + 2) and cont(position + 3)):
                position += 1
                continue
            value = ((byte & 0x03) << 18) | ((data[position + 1] & 0x3F) << 12) | (
                (data[position + 2] & 0x3F) << 6) | (data[position + 3] & 0x3F)
            position += 4
            if value < 0x10000:
                continue
            produced = [0xD800 | ((value - 0x10000) >> 10), 0xDC00 | ((value - 0x10000) & 0x3FF)]
        for unit in produced:
            if count < dst_len:
                units.append(unit)
            count += 1
    return units, count


def _units(data: bytes, offset: int, count: int) -> List[int]:
    """``count`` u16 at ``offset`` (stopping at the end of the message, never past it)."""
    end = min(len(data), offset + 2 * count)
    end -= (end - offset) % 2
    return list(struct.unpack_from(f"<{(end - offset) // 2}H", data, offset)) if end > offset \
        else []


def _put_units(buffer: bytearray, offset: int, units: Sequence[int]) -> None:
    struct.pack_into(f"<{len(units)}H", buffer, offset, *units)


def _utf16(text: str, limit_units: int) -> bytes:
    """``text`` as NUL-terminated UTF-16LE within ``limit_units`` units."""
    data = text.encode("utf-16-le")[:2 * (limit_units - 1)]
    return data + b"\0\0"


# -- the host's messages -----------------------------------------------------------------

_EXCH_KEY = 4 + 12  # offset of key in a get/set host message
_EXCH_VALUE = _EXCH_KEY + MAX_KEY_SIZE
IP_OFFSET = 2  # hv_kvp_ip_msg: the ip value follows u8 operation, u8 pool


def host_exchange(op: int, pool: int, key: str, value: bytes = b"", value_type: int = REG_SZ,
                  value_size: Optional[int] = None, key_size: Optional[int] = None) -> bytes:
    """A GET or SET from the host: UTF-16 key (its size in bytes with the NUL)."""
    key_bytes = _utf16(key, MAX_KEY_SIZE // 2)
    body = struct.pack("<III", value_type,
                       len(key_bytes) if key_size is None else key_size,
                       len(value) if value_size is None else value_size)
    body += key_bytes.ljust(MAX_KEY_SIZE, b"\0")[:MAX_KEY_SIZE]
    body += value.ljust(MAX_VALUE_SIZE, b"\0")[:MAX_VALUE_SIZE]
    return protocol.request(op, pool, body)


def host_get(pool: int, key: str) -> bytes:
    return host_exchange(Op.GET, pool, key)


def host_set(pool: int, key: str, value: str) -> bytes:
    data = _utf16(value, MAX_VALUE_SIZE // 2)
    return host_exchange(Op.SET, pool, key, data)


def host_set_number(pool: int, key: str, number: int, wide: bool = False) -> bytes:
    if wide:
        return host_exchange(Op.SET, pool, key, struct.pack("<Q", number), REG_U64, 8)
    return host_exchange(Op.SET, pool, key, struct.pack("<I", number), REG_U32, 4)


def host_delete(pool: int, key: str) -> bytes:
    key_bytes = _utf16(key, MAX_KEY_SIZE // 2)
    return protocol.request(Op.DELETE, pool, struct.pack("<I", len(key_bytes))
                            + key_bytes.ljust(MAX_KEY_SIZE, b"\0")[:MAX_KEY_SIZE])


def host_enumerate(pool: int, index: int) -> bytes:
    return protocol.request(Op.ENUMERATE, pool, struct.pack("<I", index))


def _host_ip(op: int, adapter_id: str, fields: Dict[str, str], family: int = 0,
             dhcp: int = 0) -> bytes:
    value = bytearray(protocol.IP_VALUE_SIZE)
    sizes = {"adapter_id": MAX_ADAPTER_ID_SIZE, "ip_addr": MAX_IP_ADDR_SIZE,
             "sub_net": MAX_IP_ADDR_SIZE, "gate_way": MAX_GATEWAY_SIZE,
             "dns_addr": MAX_IP_ADDR_SIZE}
    for name, text in {"adapter_id": adapter_id, **fields}.items():
        data = _utf16(text, sizes[name])
        offset = IP_FIELDS[name][0]
        value[offset:offset + len(data)] = data
    value[256] = family
    value[257] = dhcp
    message = struct.pack("<BB", op, 0) + bytes(value)
    return message + bytes(MESSAGE_SIZE - len(message))


def host_get_ip_info(mac: str, family: int = 0) -> bytes:
    """GET_IP_INFO for the adapter with MAC ``mac`` (``00:15:5D:...``)."""
    return _host_ip(Op.GET_IP_INFO, mac, {}, family)


def host_set_ip_info(adapter_guid: str, ip_addr: str = "", sub_net: str = "",
                     gate_way: str = "", dns_addr: str = "", dhcp: bool = False) -> bytes:
    """SET_IP_INFO for the adapter ``{GUID}``; the lists are ``;``-separated."""
    family = protocol.ADDR_FAMILY_IPV4 | (protocol.ADDR_FAMILY_IPV6 if ":" in ip_addr else 0)
    return _host_ip(Op.SET_IP_INFO, "{" + adapter_guid.strip("{}") + "}",
                    {"ip_addr": ip_addr, "sub_net": sub_net, "gate_way": gate_way,
                     "dns_addr": dns_addr}, family, 1 if dhcp else 0)


def _host_text(data: bytes, offset: int, size_bytes: int) -> str:
    raw = data[offset:offset + size_bytes]
    units = _units(raw, 0, len(raw) // 2)
    if 0 in units:
        units = units[:units.index(0)]
    return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le", errors="replace")


@dataclass(frozen=True)
class HostEntry:
    key: str
    value: str


def decode_exchange(reply: bytes, enumerate_reply: bool = False) -> HostEntry:
    """The key and value of a GET or ENUMERATE answer, as the host reads them."""
    base = 4 + (4 if enumerate_reply else 0)
    _, key_size, value_size = struct.unpack_from("<III", reply, base)
    key = _host_text(reply, base + 12, min(key_size, MAX_KEY_SIZE))
    value = _host_text(reply, base + 12 + MAX_KEY_SIZE, min(value_size, MAX_VALUE_SIZE))
    return HostEntry(key, value)


@dataclass(frozen=True)
class HostIpInfo:
    adapter_id: str
    addr_family: int
    dhcp_enabled: int
    ip_addr: str
    sub_net: str
    gate_way: str
    dns_addr: str

    @property
    def addresses(self) -> List[str]:
        return [entry for entry in self.ip_addr.split(";") if entry]


def decode_ip_info(reply: bytes) -> HostIpInfo:
    """A GET_IP_INFO answer in the host's hv_kvp_ip_msg form."""
    base = IP_OFFSET
    texts = {name: _host_text(reply, base + offset, size)
             for name, (offset, size) in IP_FIELDS.items()}
    return HostIpInfo(texts["adapter_id"], reply[base + 256], reply[base + 257],
                      texts["ip_addr"], texts["sub_net"], texts["gate_way"], texts["dns_addr"])


# -- the driver's conversions -----------------------------------------------------------


def host_to_user(hmsg: bytes, adapters: Dict[str, str]) -> bytes:
    """``hv_kvp_convert_hostmsg_to_usermsg``: what the daemon reads."""
    op, pool = hmsg[0], hmsg[1]
    umsg = bytearray(MESSAGE_SIZE)
    umsg[0], umsg[1] = op, pool
    body = 4
    if op == Op.SET_IP_INFO:
        for name, (offset, _) in IP_FIELDS.items():
            host_units = {"adapter_id": MAX_ADAPTER_ID_SIZE, "gate_way": MAX_GATEWAY_SIZE}.get(
                name, MAX_IP_ADDR_SIZE)
            dst = {"adapter_id": MAX_ADAPTER_ID_SIZE, "gate_way": MAX_GATEWAY_SIZE}.get(
                name, MAX_IP_ADDR_SIZE)
            text, _ = utf16_to_utf8(_units(hmsg, IP_OFFSET + offset, host_units), dst)
            umsg[body + offset:body + offset + len(text)] = text
        adapter = protocol.cstring(bytes(umsg[body:body + 2 * MAX_ADAPTER_ID_SIZE]))
        for guid, name in adapters.items():
            # strncmp(buf, adapter_id + 1, n): after the brace, the GUID string
            # (hyperv_guid2str prints lower case; compared here in any case)
            if adapter[1:1 + len(guid)].lower() == guid.lower().encode():
                umsg[body:body + 2 * MAX_ADAPTER_ID_SIZE] = protocol.fit(
                    name.encode(), MAX_ADAPTER_ID_SIZE).ljust(2 * MAX_ADAPTER_ID_SIZE, b"\0")
                break
        umsg[body + 256] = hmsg[IP_OFFSET + 256]
        umsg[body + 257] = hmsg[IP_OFFSET + 257]
    elif op == Op.GET_IP_INFO:
        text, _ = utf16_to_utf8(_units(hmsg, IP_OFFSET, MAX_ADAPTER_ID_SIZE),
                                MAX_ADAPTER_ID_SIZE)
        umsg[body:body + len(text)] = text
        umsg[body + 256] = hmsg[IP_OFFSET + 256]
    elif op == Op.SET:
        value_type, key_size, value_size = struct.unpack_from("<III", hmsg, body)
        if value_type == REG_SZ:
            text, count = utf16_to_utf8(_units(hmsg, body + 12 + MAX_KEY_SIZE, value_size),
                                        MAX_VALUE_SIZE - 1)
            umsg[body + 12 + MAX_KEY_SIZE:body + 12 + MAX_KEY_SIZE + len(text)] = text
            new_value_size = count // 2
        elif value_type in (REG_U32, REG_U64):
            number = struct.unpack_from("<I" if value_type == REG_U32 else "<Q", hmsg,
                                        body + 12 + MAX_KEY_SIZE)[0]
            text = str(number).encode()
            umsg[body + 12 + MAX_KEY_SIZE:body + 12 + MAX_KEY_SIZE + len(text)] = text
            new_value_size = len(text) + 1
        else:
            new_value_size = 0
        key, count = utf16_to_utf8(_units(hmsg, body + 12, key_size), MAX_KEY_SIZE - 1)
        umsg[body + 12:body + 12 + len(key)] = key
        struct.pack_into("<III", umsg, body, 0, count // 2, new_value_size)
    elif op in (Op.GET, Op.DELETE):
        key_offset = body + (12 if op == Op.GET else 4)
        key_size = struct.unpack_from("<I", hmsg, body + (4 if op == Op.GET else 0))[0]
        key, count = utf16_to_utf8(_units(hmsg, key_offset, key_size), MAX_KEY_SIZE - 1)
        umsg[key_offset:key_offset + len(key)] = key
        struct.pack_into("<I", umsg, body + (4 if op == Op.GET else 0), count // 2)
    elif op == Op.ENUMERATE:
        umsg[body:body + 4] = hmsg[body:body + 4]
    return bytes(umsg)


def user_to_host(umsg: bytes, hmsg: bytes) -> Tuple[bytes, int]:
    """``hv_kvp_convert_usermsg_to_hostmsg``: (the host's answer, the conversion error)."""
    out = bytearray(hmsg)
    op = hmsg[0]
    body = 4
    if op == Op.GET_IP_INFO:
        for offset, size in IP_FIELDS.values():
            units_max = size // 2
            text = protocol.cstring(umsg[body + offset:body + offset + size])
            units, _ = utf8_to_utf16(text, units_max)
            _put_units(out, IP_OFFSET + offset, units)
        out[IP_OFFSET + 256] = umsg[body + 256]
        out[IP_OFFSET + 257] = umsg[body + 257]
        return bytes(out), 0
    if op in (Op.SET_IP_INFO, Op.SET, Op.DELETE):
        return bytes(out), 0
    if op in (Op.ENUMERATE, Op.GET):
        data = body + (4 if op == Op.ENUMERATE else 0)
        if op == Op.ENUMERATE:
            key = protocol.cstring(umsg[data + 12:data + 12 + MAX_KEY_SIZE])
            units, hkey_len = utf8_to_utf16(key, MAX_KEY_SIZE // 2 - 2)
            _put_units(out, data + 12, units)
            struct.pack_into("<I", out, data + 4, 2 * (hkey_len + 1))
        value = protocol.cstring(umsg[data + 12 + MAX_KEY_SIZE:data + 12 + MAX_KEY_SIZE
                                      + MAX_VALUE_SIZE])
        units, hvalue_len = utf8_to_utf16(value, MAX_VALUE_SIZE // 2 - 2)
        _put_units(out, data + 12 + MAX_KEY_SIZE, units)
        struct.pack_into("<I", out, data + 8, 2 * (hvalue_len + 1))
        struct.pack_into("<I", out, data, REG_SZ)
        return bytes(out), 0
    return bytes(out), errno.EINVAL


def adapter_guid(mac: str) -> str:
    """The simulated VMBus instance GUID of the hn with MAC ``mac`` (stable)."""
    return str(uuid.uuid5(GUID_NAMESPACE, mac.lower()))


# -- the driver --------------------------------------------------------------------------


@dataclass
class _Request:
    message: bytes
    answer: Answer
    arrived: float
    timer: int = 0
    handed: bool = False


@dataclass
class _Opener:
    sock: socket.socket
    pid: Optional[int]


@dataclass
class KvpDriver:
    """The kernel side of one guest's ``/dev/hv_kvp_dev``, in a ``Loop``.

    ``adapters()`` gives the hn channels' instance GUIDs (GUID -> hn name)
    for SET_IP_INFO; ``timeout`` is the driver's 5 s (smaller in tests).
    """

    loop: Loop
    dev_dir: Path
    adapters: Callable[[], Dict[str, str]] = dict
    timeout: float = DAEMON_TIMEOUT
    events: List[Dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener: Optional[socket.socket] = None
        self.opener: Optional[_Opener] = None
        self.daemon_task: Optional[int] = None
        self.register_done = False
        self.daemon_busy = False
        self.req_timed_out = True
        self.current: Optional[_Request] = None
        self.ring: List[_Request] = []

    @property
    def path(self) -> Path:
        return Path(self.dev_dir) / DEVICE_NAME

    def attach(self) -> None:
        """``hv_kvp_attach``: make_dev, root:wheel 0640."""
        self.listener = bind_unix(self.path, kind=simwire.SOCKET_TYPE)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o640)
        self.loop.add_reader(self.listener, self._accept)
        self._note("attach")

    def detach(self, kill: bool = True) -> None:
        """``hv_kvp_detach``: SIGKILL the opener, destroy the device."""
        if kill and self.daemon_task:
            with contextlib.suppress(OSError):
                os.kill(self.daemon_task, signal.SIGKILL)
        self._close()
        if self.listener is not None:
            self.loop.remove_reader(self.listener)
            self.listener.close()
            self.listener = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._note("detach")

    def negotiate(self) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """``vmbus_ic_negomsg``: answered by the driver, whatever the daemon does."""
        return KVP_FWVER, KVP_MSGVER

    # -- the device ------------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        pid = peer_pid(sock)
        if self.opener is not None:
            self._note("busy", pid=pid)
            with contextlib.suppress(OSError):
                sock.send(simwire.encode(simwire.KIND_OPEN, errno.EBUSY))
            sock.close()
            return
        try:
            sock.send(simwire.encode(simwire.KIND_OPEN, 0))
        except OSError:
            sock.close()
            return
        self.opener = _Opener(sock, pid)
        self.daemon_task = pid
        self.daemon_busy = False  # hv_kvp_dev_open
        self.loop.add_reader(sock, self._readable)
        self._note("open", pid=pid)

    def _close(self) -> None:
        """``hv_kvp_dev_close``: dev_accessed = register_done = false."""
        if self.opener is None:
            return
        self.loop.remove_reader(self.opener.sock)
        self.opener.sock.close()
        self._note("close", pid=self.opener.pid)
        self.opener = None
        self.register_done = False

    def _readable(self) -> None:
        for _ in range(MAX_RECORDS_PER_WAKEUP):
            opener = self.opener
            if opener is None:
                return
            try:
                record = opener.sock.recv(simwire.MAX_RECORD + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                record = b""
            if not record:
                self._close()
                return
            decoded = simwire.decode(record)
            if decoded is None or decoded[0] != simwire.KIND_WRITE:
                self._note("bad record", size=len(record), outcome="ignored")
                continue
            status = self._write(decoded[2])
            self._send(simwire.encode(simwire.KIND_WRITTEN, status))

    def _send(self, record: bytes) -> None:
        if self.opener is None:
            return
        try:
            self.opener.sock.send(record)
        except (BlockingIOError, InterruptedError):
            self._note("undelivered", outcome="the opener is not reading")
        except OSError:
            self._close()

    def _write(self, data: bytes) -> int:
        """``hv_kvp_dev_daemon_write``: the errno the write returns."""
        taken = data[:MESSAGE_SIZE]  # MIN(uio_resid, BUFFERSIZE)
        umsg = taken + bytes(MESSAGE_SIZE - len(taken))
        if not self.register_done:
            if umsg[0] == protocol.OP_REGISTER:
                self.register_done = True
                self._note("register")
                # hv_kvp_callback queues the work item; the write returns first
                self.loop.call_at(time.monotonic(), self._next)
                return 0
            self._note("write", outcome="EINVAL: not registered and not HV_KVP_OP_REGISTER")
            return errno.EINVAL
        error = 0
        request = self.current
        self.daemon_busy = False
        if not self.req_timed_out and request is not None and request.handed:
            reply, error = user_to_host(umsg, request.message)
            status = int(struct.unpack_from("<I", umsg)[0])
            self._finish(request, status, reply, "answered")
        else:
            self._note("write", size=len(data), outcome="dropped: no request waits for it")
        return error

    # -- the host ---------------------------------------------------------------------

    def host_request(self, message: bytes, answer: Answer) -> None:
        """One KVP message from the host; ``answer(status, reply)`` is called once, or never."""
        if len(message) < MESSAGE_SIZE:
            message = message + bytes(MESSAGE_SIZE - len(message))
        request = _Request(bytes(message[:MESSAGE_SIZE]), answer, time.monotonic())
        if len(self.ring) >= RING_SLOTS:
            self._note("host", op=message[0], outcome="lost: the VMBus ring is full")
            return
        self.ring.append(request)
        if not self.register_done:
            # hv_kvp_callback: nothing is read before a daemon registered
            self._note("host", op=message[0], outcome="not read: no daemon registered")
            return
        self._next()

    def _next(self) -> None:
        """``hv_kvp_process_request``: take the next host message, one at a time."""
        if self.current is not None or not self.ring or not self.register_done:
            return
        request = self.ring.pop(0)
        self.current = request
        if not self.daemon_busy:
            self.req_timed_out = False
            self.daemon_busy = True
            request.handed = True
            umsg = host_to_user(request.message, self.adapters())
            self._note("read", op=request.message[0])
            self._send(simwire.encode(simwire.KIND_MESSAGE, 0, umsg))
        else:
            self._note("host", op=request.message[0],
                       outcome="not handed over: the daemon is still busy with the last one")
        request.timer = self.loop.call_at(time.monotonic() + self.timeout,
                                          lambda: self._expire(request))

    def _expire(self, request: _Request) -> None:
        if self.current is not request:
            return
        self.req_timed_out = True
        self._finish(request, HV_E_FAIL, request.message,
                     f"timed out: no answer within {self.timeout:g} s")

    def _finish(self, request: _Request, status: int, reply: bytes, why: str) -> None:
        self.loop.cancel(request.timer)
        self.req_timed_out = True  # set after the wait, whatever woke it
        self.current = None
        self._note("respond", op=request.message[0], status=f"{status:#010x}", outcome=why)
        request.answer(status, reply)
        # the work item goes on with the next host message once it is woken
        self.loop.call_at(time.monotonic(), self._next)

    def _note(self, what: str, **details: Any) -> None:
        event = {"time": time.time(), "what": what, **details}
        self.events.append(event)
        del self.events[:-MAX_EVENTS]
        LOG.debug("hv_kvp %s", event)

    def status(self) -> Dict[str, Any]:
        return {"device": str(self.path), "opener": self.opener.pid if self.opener else None,
                "registered": self.register_done, "daemon_busy": self.daemon_busy,
                "queued": len(self.ring), "in_progress": self.current is not None}

    # -- synchronous use (tests, the CLI) -----------------------------------------------

    def transact(self, message: bytes, limit: float = 10.0) -> Tuple[int, bytes]:
        """Send ``message`` and run the loop until it is answered: (status, reply)."""
        got: List[Tuple[int, bytes]] = []
        self.host_request(message, lambda status, reply: got.append((status, reply)))
        deadline = time.monotonic() + limit
        while not got:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the driver within {limit:g} s")
            self.loop.run_once(min(left, 0.5))
        return got[0]

    def wait_registered(self, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not self.register_done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no daemon registered")
            self.loop.run_once(min(left, 0.2))


# -- ``hvbsd sim kvp`` -------------------------------------------------------------------

POOL_NAMES = {"external": 0, "guest": 1, "auto": 2, "auto_external": 3, "auto_internal": 4}
USAGE = ("usage: kvp get POOL KEY | set POOL KEY VALUE | delete POOL KEY | enum POOL |"
         " ip MAC | set-ip MAC (dhcp | ADDRESS/PREFIX[;...] [GATEWAY])")


class UsageError(ValueError):
    pass


def _pool(text: str) -> int:
    if text.isdigit() and int(text) < protocol.POOL_COUNT:
        return int(text)
    if text.lower() in POOL_NAMES:
        return POOL_NAMES[text.lower()]
    raise UsageError(f"unknown pool {text!r}: {', '.join(POOL_NAMES)} or 0-4")


def command(driver: KvpDriver, argv: Sequence[str], mac_to_guid: Callable[[str], Optional[str]]
            = lambda mac: adapter_guid(mac), limit: float = 10.0) -> Tuple[int, str]:
    """``hvbsd sim kvp GUEST ...`` against ``driver``: (exit status, text to print).

    Exit 0 when the host was told S_OK, 1 when it got another status (the
    text says which), 2 for bad usage.
    """
    words = list(argv)
    try:
        if not words:
            raise UsageError(USAGE)
        verb, rest = words[0], words[1:]
        if verb == "get" and len(rest) == 2:
            status, reply = driver.transact(host_get(_pool(rest[0]), rest[1]), limit)
            return _done(status, decode_exchange(reply).value if status == HV_S_OK else "")
        if verb == "set" and len(rest) == 3:
            status, _ = driver.transact(host_set(_pool(rest[0]), rest[1], rest[2]), limit)
            return _done(status, "")
        if verb == "delete" and len(rest) == 2:
            status, _ = driver.transact(host_delete(_pool(rest[0]), rest[1]), limit)
            return _done(status, "")
        if verb == "enum" and len(rest) == 1:
            lines = []
            pool = _pool(rest[0])
            for index in range(protocol.MAX_VALUE_SIZE):
                status, reply = driver.transact(host_enumerate(pool, index), limit)
                if status != HV_S_OK:
                    break
                entry = decode_exchange(reply, enumerate_reply=True)
                lines.append(f"{entry.key}={entry.value}")
            return 0, "\n".join(lines)
        if verb == "ip" and len(rest) == 1:
            status, reply = driver.transact(host_get_ip_info(rest[0].upper()), limit)
            if status != HV_S_OK:
                return _done(status, "")
            info = decode_ip_info(reply)
            return 0, "\n".join([f"addresses: {info.ip_addr}", f"subnets: {info.sub_net}",
                                 f"gateways: {info.gate_way}", f"dns: {info.dns_addr}",
                                 f"dhcp: {'enabled' if info.dhcp_enabled else 'disabled'}",
                                 f"families: {info.addr_family}"])
        if verb == "set-ip" and len(rest) in (2, 3):
            guid = mac_to_guid(rest[0])
            if guid is None:
                raise UsageError(f"no adapter with MAC {rest[0]!r}")
            if rest[1] == "dhcp":
                message = host_set_ip_info(guid, dhcp=True)
            else:
                addresses, masks = [], []
                for entry in rest[1].split(";"):
                    address, _, prefix = entry.partition("/")
                    addresses.append(address)
                    masks.append(prefix)
                message = host_set_ip_info(guid, ";".join(addresses), ";".join(masks),
                                           rest[2] if len(rest) == 3 else "")
            status, _ = driver.transact(message, limit)
            return _done(status, "")
        raise UsageError(USAGE)
    except UsageError as exc:
        return 2, str(exc)
    except TimeoutError as exc:
        return 1, str(exc)


def _done(status: int, text: str) -> Tuple[int, str]:
    if status == HV_S_OK:
        return 0, text
    return 1, f"the guest answered {protocol.status_name(status)}"
