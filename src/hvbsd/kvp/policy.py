"""What the daemon answers to each KVP operation.

``Policy.answer(message)`` takes one decoded request and returns the whole
answer frame: the status in the header's u32 ``error``, the body as the
driver converts it back for the host (``hv_kvp_convert_usermsg_to_hostmsg``).
The operations, after ``kvp_op_*`` of FreeBSD's stock daemon
(``contrib/hyperv/tools/hv_kvp_daemon.c``) where nothing below says otherwise:

- GET: the pool's value of the key, S_OK; S_CONT when absent; the AUTO pool
  is read from its file too, as the stock daemon does.
- SET / DELETE: refused (S_CONT) for the AUTO pool and for key or value
  sizes above the protocol's (512 / 2048), as stock; an empty key, a full
  pool or a pool file that cannot be used: S_CONT too (the host reads S_CONT
  as "not done").
- ENUMERATE: pools other than AUTO: record ``index`` or S_CONT past the end;
  AUTO: index 0 FullyQualifiedDomainName ... 9 ProcessorArchitecture with the
  stock daemon's values (OSMajorVersion and OSMinorVersion empty, the
  IntegrationServicesVersion string "BSD Pre-Release version"), S_CONT after.
- GET_IP_INFO: hvbsd's lagg-aware answer (:func:`hvbsd.kvp.netinfo.lookup`),
  or with ``lookup="stock"`` the stock daemon's, to show the difference;
  E_FAIL when no adapter has that MAC.
- SET_IP_INFO: through ``set_ip`` (:mod:`hvbsd.kvp.rcconf`), E_FAIL when it
  refuses or is off.
- any other operation: NOT_SUPPORTED, as stock; a pool number outside 0-4:
  E_FAIL (the stock daemon indexes its pool array with it).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Tuple

from hvbsd.kvp import netinfo, rcconf
from hvbsd.kvp.platform import CommandFailed, OsInfo, Platform
from hvbsd.kvp.pool import PoolError, Pools
from hvbsd.kvp.protocol import (
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    POOL_COUNT,
    ExchangeValue,
    IpInfo,
    Message,
    Op,
    Pool,
    Status,
    answer,
    enumerate_payload,
)

#: the stock daemon's ``lic_version``
INTEGRATION_SERVICES_VERSION = "BSD Pre-Release version"
AUTO_KEYS = ("FullyQualifiedDomainName", "IntegrationServicesVersion", "NetworkAddressIPv4",
             "NetworkAddressIPv6", "OSBuildNumber", "OSName", "OSMajorVersion",
             "OSMinorVersion", "OSVersion", "ProcessorArchitecture")
LOOKUPS = ("hvbsd", "stock")

Logger = Callable[[str], None]
#: the set-IP hook: (rc.conf change) -> None, called after the managed block was rewritten
Applier = Callable[[rcconf.Change], None]


@dataclasses.dataclass
class Outcome:
    status: int
    note: str = ""


class Policy:
    def __init__(self, pools: Pools, platform: Platform, lookup: str = "hvbsd",
                 set_ip: bool = True, apply: Optional[Applier] = None,
                 log: Optional[Logger] = None) -> None:
        if lookup not in LOOKUPS:
            raise ValueError(f"lookup {lookup!r} is not one of {LOOKUPS}")
        self.pools = pools
        self.platform = platform
        self.lookup = lookup
        self.set_ip = set_ip
        self.apply = apply
        self.log = log or (lambda text: None)
        self._os: Optional[OsInfo] = None
        self.last: Outcome = Outcome(Status.S_OK)

    @property
    def os_info(self) -> OsInfo:
        if self._os is None:  # kvp_get_os_info runs once, at start
            self._os = self.platform.os_info()
        return self._os

    def answer(self, message: Message) -> bytes:
        """The answer frame for ``message``."""
        handlers: Dict[int, Callable[[Message], Tuple[Outcome, bytes]]] = {
            Op.GET: self._get, Op.SET: self._set, Op.DELETE: self._delete,
            Op.ENUMERATE: self._enumerate, Op.GET_IP_INFO: self._get_ip_info,
            Op.SET_IP_INFO: self._set_ip_info}
        handler = handlers.get(message.op)
        if handler is None:
            outcome, payload = Outcome(Status.NOT_SUPPORTED, "unsupported operation"), b""
        elif message.op in (Op.GET, Op.SET, Op.DELETE, Op.ENUMERATE) and \
                not 0 <= message.pool < POOL_COUNT:
            outcome = Outcome(Status.E_FAIL, f"pool {message.pool} does not exist")
            payload = message.body
        else:
            outcome, payload = handler(message)
        self.last = outcome
        return answer(outcome.status, payload)

    # -- the pools ------------------------------------------------------------------

    def _get(self, message: Message) -> Tuple[Outcome, bytes]:
        data = message.exchange()
        if data.key_size > MAX_KEY_SIZE or data.value_size > MAX_VALUE_SIZE:
            return Outcome(Status.S_CONT, "key or value size too large"), message.body
        try:
            value = self.pools.get(message.pool, data.key_bytes)
        except PoolError as exc:
            return Outcome(Status.S_CONT, str(exc)), message.body
        if value is None:
            return Outcome(Status.S_CONT, "no such key"), message.body
        reply = dataclasses.replace(data, value=value, value_size=len(value) + 1)
        return Outcome(Status.S_OK), reply.pack()

    def _set(self, message: Message) -> Tuple[Outcome, bytes]:
        data = message.exchange()
        if message.pool == Pool.AUTO:
            return Outcome(Status.S_CONT, "the AUTO pool is not writable from the host"), \
                message.body
        if data.key_size > MAX_KEY_SIZE or data.value_size > MAX_VALUE_SIZE:
            return Outcome(Status.S_CONT, "key or value size too large"), message.body
        try:
            self.pools.set(message.pool, data.key_bytes, data.value_bytes)
        except PoolError as exc:
            return Outcome(Status.S_CONT, str(exc)), message.body
        return Outcome(Status.S_OK), message.body

    def _delete(self, message: Message) -> Tuple[Outcome, bytes]:
        key_size, key = message.delete_key()
        if message.pool == Pool.AUTO:
            return Outcome(Status.S_CONT, "the AUTO pool is not writable from the host"), \
                message.body
        if key_size > MAX_KEY_SIZE:
            return Outcome(Status.S_CONT, "key size too large"), message.body
        try:
            found = self.pools.delete(message.pool, key)
        except PoolError as exc:
            return Outcome(Status.S_CONT, str(exc)), message.body
        return (Outcome(Status.S_OK) if found else Outcome(Status.S_CONT, "no such key")), \
            message.body

    def _enumerate(self, message: Message) -> Tuple[Outcome, bytes]:
        index = message.enumerate_index()
        if message.pool != Pool.AUTO:
            try:
                entry = self.pools.entry(message.pool, index)
            except PoolError as exc:
                return Outcome(Status.S_CONT, str(exc)), message.body
            if entry is None:
                return Outcome(Status.S_CONT, "end of the pool"), message.body
            return Outcome(Status.S_OK), enumerate_payload(index, ExchangeValue.of(*entry))
        if index >= len(AUTO_KEYS):
            return Outcome(Status.S_CONT, "end of the AUTO pool"), message.body
        key = AUTO_KEYS[index]
        value = self._auto_value(key)
        return Outcome(Status.S_OK), enumerate_payload(
            index, ExchangeValue.of(key.encode(), value.encode("utf-8", errors="replace")))

    def _auto_value(self, key: str) -> str:
        info = self.os_info
        if key == "FullyQualifiedDomainName":
            return info.hostname
        if key == "IntegrationServicesVersion":
            return INTEGRATION_SERVICES_VERSION
        if key in ("NetworkAddressIPv4", "NetworkAddressIPv6"):
            try:
                interfaces = self.platform.interfaces()
            except CommandFailed as exc:
                self.log(f"ifconfig: {exc}")
                return ""
            return netinfo.family_addresses(interfaces, 4 if key.endswith("IPv4") else 6)
        return {"OSBuildNumber": info.release, "OSName": info.name, "OSMajorVersion": "",
                "OSMinorVersion": "", "OSVersion": info.release,
                "ProcessorArchitecture": info.machine}[key]

    # -- addresses ------------------------------------------------------------------

    def _get_ip_info(self, message: Message) -> Tuple[Outcome, bytes]:
        request = message.ip_info()
        mac = request.adapter_id
        try:
            interfaces = self.platform.interfaces()
        except CommandFailed as exc:
            return Outcome(Status.E_FAIL, f"ifconfig: {exc}"), message.body
        if self.lookup == "stock":
            name, addresses = netinfo.stock_lookup(interfaces, mac)
            names: List[str] = [name] if name else []
        else:
            hn, source = netinfo.lookup(interfaces, mac)
            name = source.name if source is not None else None
            addresses = source.addresses if source is not None else []
            names = [n for n in (source.name if source else None, hn.name if hn else None) if n]
        if name is None:
            return Outcome(Status.E_FAIL, f"no adapter with MAC {mac[:40]!r}"), message.body
        info = netinfo.ip_info(mac, addresses, self.platform.gateways(name),
                               self.platform.dns(), self.platform.dhcp(names))
        return Outcome(Status.S_OK, f"{mac} -> {name}"), info.pack()

    def _set_ip_info(self, message: Message) -> Tuple[Outcome, bytes]:
        info: IpInfo = message.ip_info()
        if not self.set_ip:
            return Outcome(Status.E_FAIL, "set-IP requests are turned off"), message.body
        try:
            request = rcconf.parse_request(info.adapter_id, info.dhcp_enabled, info.ip_addr,
                                           info.sub_net, info.gate_way)
            change = rcconf.apply(self.platform.rc_conf, request)
        except rcconf.SetIpRefused as exc:
            return Outcome(Status.E_FAIL, f"set IP refused: {exc}"), message.body
        note = f"{change.path}: {change.variable}=\"{change.new}\" (was \"{change.old}\")"
        if info.dns_addr:
            note += "; DNS servers not applied (hvbsd does not manage resolv.conf)"
        if self.apply is not None:
            try:
                self.apply(change)
            except Exception as exc:  # the file is written; the host hears of the failure
                return Outcome(Status.E_FAIL, f"{note}; applying it failed: {exc}"), \
                    message.body
        return Outcome(Status.S_OK, note), message.body


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
