"""The guest's interfaces as the host asks about them: which adapter, which addresses.

The host names an adapter by its MAC (``GET_IP_INFO``). FreeBSD's stock
daemon (``contrib/hyperv/tools/hv_kvp_daemon.c``) answers with

- ``kvp_mac_to_if_name``: the FIRST ``IFT_ETHER`` interface of getifaddrs()
  whose upper-cased ``ether_ntoa`` starts with the host's string
  (``strncmp(buf, mac, strlen(mac))``), then
- ``kvp_get_ip_info``: the addresses of every interface whose name STARTS
  with that name (``strncmp(ifa_name, if_name, strlen(if_name))``).

In hvbsd's lagg mode hn0, its VF and lagg0 share one MAC and hn0 comes first,
so the host is told hn0's addresses (no IPv4: it moved to lagg0), and the
prefix match gives hn1's adapter hn10's addresses too. ``stock_lookup`` is
that algorithm, kept to show the difference; ``lookup`` is hvbsd's:

- the adapter with MAC m is the ``hn`` interface whose MAC is m (compared
  whole, case-insensitively);
- its addresses are those of the lagg whose ports include that hn (names
  compared exactly), else the hn's own.

The interface snapshot comes from ``ifconfig -a`` output (``parse_ifconfig``):
the same text on FreeBSD and in hvbsd's simulator, so one parser serves both
and is tested on the text itself. getifaddrs(3) through ctypes would need
FreeBSD's ``sockaddr_dl`` layout and could not run in the Linux simulator.
Interfaces keep ifconfig's order, which is the interface index order
getifaddrs() uses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence, Tuple

from hvbsd.kvp.protocol import (
    ADDR_FAMILY_IPV4,
    ADDR_FAMILY_IPV6,
    IP_FIELDS,
    IpInfo,
)

#: bounds on what a snapshot holds, whatever ifconfig printed
MAX_INTERFACES = 1024
MAX_ADDRESSES = 256
MAX_LINE = 4096

_HEADER = re.compile(r"^([A-Za-z0-9_.\-]{1,15}): flags=")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_HN = re.compile(r"^hn[0-9]+$")
# INET_ADDRSTRLEN / INET6_ADDRSTRLEN: the room the stock daemon keeps per entry
INET_ADDRSTRLEN = 16
INET6_ADDRSTRLEN = 46


@dataclass(frozen=True)
class Address:
    version: int  # 4 or 6
    address: str
    prefixlen: int

    @property
    def subnet(self) -> str:
        """As the stock daemon reports it: dotted netmask for IPv4, ``/N`` for IPv6."""
        if self.version == 4:
            return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefixlen}").netmask)
        return f"/{self.prefixlen}"


@dataclass
class Interface:
    name: str
    ether: Optional[str] = None  # lower-case, colon-separated
    addresses: List[Address] = field(default_factory=list)
    lagg_ports: List[str] = field(default_factory=list)

    @property
    def is_hn(self) -> bool:
        return bool(_HN.match(self.name))


def normalize_mac(text: str) -> Optional[str]:
    """``00:15:5D:0A:0B:0C`` or ``00-15-5d-0a-0b-0c`` as ``00:15:5d:0a:0b:0c``, else None."""
    candidate = text.strip().replace("-", ":")
    return candidate.lower() if _MAC.match(candidate) else None


def _netmask_prefix(text: str) -> Optional[int]:
    try:
        if text.startswith("0x"):
            value = int(text, 16)
            if not 0 <= value < 1 << 32:
                return None
            text = str(ipaddress.IPv4Address(value))
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    except ValueError:
        return None


def parse_ifconfig(text: str) -> List[Interface]:
    """The interfaces of ``ifconfig -a`` output, in order; lines it cannot use are skipped."""
    interfaces: List[Interface] = []
    current: Optional[Interface] = None
    for raw in text.splitlines():
        line = raw[:MAX_LINE]
        header = _HEADER.match(line)
        if header:
            if len(interfaces) >= MAX_INTERFACES:
                break
            current = Interface(header.group(1))
            interfaces.append(current)
            continue
        if current is None or not line[:1].isspace():
            continue
        words = line.split()
        if not words:
            continue
        if words[0] == "ether" and len(words) > 1 and current.ether is None:
            current.ether = normalize_mac(words[1])
        elif words[0] in ("inet", "inet6") and len(words) > 1:
            if len(current.addresses) < MAX_ADDRESSES:
                address = _address(words)
                if address is not None:
                    current.addresses.append(address)
        elif (words[0] == "laggport:" and len(words) > 1
              and len(current.lagg_ports) < MAX_INTERFACES):
            current.lagg_ports.append(words[1])
    return interfaces


def _address(words: List[str]) -> Optional[Address]:
    shown = words[1].split("%", 1)[0]
    try:
        if words[0] == "inet":
            plain, _, slash = shown.partition("/")
            ipaddress.IPv4Address(plain)
            prefix: Optional[int] = int(slash) if slash.isdigit() else 32
            if "netmask" in words[2:-1]:
                prefix = _netmask_prefix(words[words.index("netmask", 2) + 1])
            if prefix is None or not 0 <= prefix <= 32:
                return None
            return Address(4, plain, prefix)
        plain, _, slash = shown.partition("/")
        ipaddress.IPv6Address(plain)
        prefix = int(slash) if slash.isdigit() else 128
        if "prefixlen" in words[2:-1]:
            value = words[words.index("prefixlen", 2) + 1]
            prefix = int(value) if value.isdigit() else None
        if prefix is None or not 0 <= prefix <= 128:
            return None
        return Address(6, str(ipaddress.IPv6Address(plain)), prefix)
    except ValueError:
        return None


# -- the two lookups ---------------------------------------------------------------


def stock_lookup(interfaces: Sequence[Interface], mac: str) -> Tuple[Optional[str],
                                                                      List[Address]]:
    """What FreeBSD's stock daemon answers for ``mac``: its name and addresses."""
    wanted = mac
    name = None
    for interface in interfaces:
        if interface.ether is None:
            continue
        if interface.ether.upper().startswith(wanted):  # strncmp(buf, mac, strlen(mac))
            name = interface.name
            break
    if name is None:
        return None, []
    addresses = [address for interface in interfaces if interface.name.startswith(name)
                 for address in interface.addresses]
    return name, addresses


def adapter(interfaces: Sequence[Interface], mac: str) -> Optional[Interface]:
    """The hn whose MAC is ``mac`` (whole, any case); None when there is none."""
    wanted = normalize_mac(mac)
    if wanted is None:
        return None
    for interface in interfaces:
        if interface.is_hn and interface.ether == wanted:
            return interface
    return None


def lookup(interfaces: Sequence[Interface], mac: str) -> Tuple[Optional[Interface],
                                                                Optional[Interface]]:
    """hvbsd's answer for ``mac``: (the hn, the interface whose addresses it reports)."""
    hn = adapter(interfaces, mac)
    if hn is None:
        return None, None
    for interface in interfaces:
        if interface.lagg_ports and hn.name in interface.lagg_ports:
            return hn, interface
    return hn, hn


def lagg_of(interfaces: Sequence[Interface], name: str) -> Optional[Interface]:
    for interface in interfaces:
        if name in interface.lagg_ports:
            return interface
    return None


# -- the answer ----------------------------------------------------------------------


def _joined(values: Iterable[str], size: int, room: int) -> str:
    """``a;b;`` as kvp_process_ip_address builds it: stop when the next may not fit."""
    text = ""
    for value in values:
        if size - len(text) < room + 1 or size - len(text) < len(value) + 2:
            break
        text += value + ";"
    return text


def ip_info(adapter_id: str, addresses: Sequence[Address], gateways: Sequence[str] = (),
            dns: Sequence[str] = (), dhcp: bool = False) -> IpInfo:
    """The GET_IP_INFO answer for these addresses, in the stock daemon's format."""
    family = 0
    for address in addresses:
        family |= ADDR_FAMILY_IPV4 if address.version == 4 else ADDR_FAMILY_IPV6
    ip_size = IP_FIELDS["ip_addr"][1]
    kept = []
    used = 0
    for address in addresses:
        room = INET_ADDRSTRLEN if address.version == 4 else INET6_ADDRSTRLEN
        if ip_size - used < room + 1:
            break
        kept.append(address)
        used += len(address.address) + 1
    return IpInfo(
        adapter_id=adapter_id,
        addr_family=family,
        dhcp_enabled=1 if dhcp else 0,
        ip_addr=_joined((a.address for a in kept), ip_size, INET_ADDRSTRLEN),
        sub_net=_joined((a.subnet for a in kept), IP_FIELDS["sub_net"][1], INET_ADDRSTRLEN),
        gate_way=_joined(gateways, IP_FIELDS["gate_way"][1], INET6_ADDRSTRLEN),
        dns_addr=_joined(dns, IP_FIELDS["dns_addr"][1], INET_ADDRSTRLEN),
    )


def family_addresses(interfaces: Sequence[Interface], version: int) -> str:
    """NetworkAddressIPv4 / IPv6 of the AUTO pool: every interface's, ``a;b;``."""
    values = [address.address for interface in interfaces for address in interface.addresses
              if address.version == version]
    return _joined(values, 2048, INET_ADDRSTRLEN if version == 4 else INET6_ADDRSTRLEN)


def parse_netstat(text: str, name: str) -> List[str]:
    """The default gateways through interface ``name`` in ``netstat -rn`` output."""
    gateways = []
    for line in text.splitlines()[:4096]:
        words = line.split()
        if len(words) >= 4 and words[0] == "default" and words[3] == name:
            gateway = words[1].split("%", 1)[0]
            try:
                ipaddress.ip_address(gateway)
            except ValueError:
                continue
            if gateway not in gateways:
                gateways.append(gateway)
    return gateways[:16]


def parse_resolv_conf(text: str) -> List[str]:
    """The ``nameserver`` addresses of resolv.conf(5), at most 16."""
    servers = []
    for line in text.splitlines()[:4096]:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                servers.append(str(ipaddress.ip_address(words[1])))
            except ValueError:
                continue
    return servers[:16]
