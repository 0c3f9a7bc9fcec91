"""rc.conf as the KVP daemon reads and changes it: hvbsd's managed block only.

hvbsd writes its settings into ``/etc/rc.conf`` between two marker lines
(``templates/manifest.yml``: ``# BEGIN hvbsd managed block`` ...
``# END hvbsd managed block``, ansible.builtin.blockinfile's markers). The
host's "set IP" request (``SET_IP_INFO``, used by Hyper-V Replica failover)
is applied there and nowhere else:

- the hn is managed by hvbsd when the block assigns ``ifconfig_<hn>``;
  otherwise the request is refused (the host is told FAIL) and nothing is
  written;
- the address goes where hvbsd keeps it: ``ifconfig_<lagg>`` when the block
  builds a static lagg with ``laggport <hn>``, else ``ifconfig_<hn>`` (which
  hyperv_vfup hands to the lagg when the VF comes, through
  ``ifconfig_getargs``: so it is effective on the lagg in lagg mode);
- the words of that value that are not addresses (``up``, ``laggproto
  failover laggport hn0``, ``mtu 9000`` ...) are kept in order; ``DHCP`` /
  ``SYNCDHCP`` / ``inet ...`` are replaced by the host's; more addresses go
  into ``ifconfig_<if>_aliasN``, the first IPv6 one into ``ifconfig_<if>_ipv6``;
  the gateway into ``defaultrouter`` / ``ipv6_defaultrouter``, all inside the
  block; every line outside the block stays byte for byte;
- every value written is rebuilt from parsed addresses, never copied from
  the request, and the file is replaced atomically (same mode).

Lines are read, never evaluated: ``${...}``, ``$(...)`` and backquotes are
text to this module.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from hvbsd.vss import files

RC_CONF = "/etc/rc.conf"
BEGIN = "# BEGIN hvbsd managed block"
END = "# END hvbsd managed block"
RC_CONF_LIMIT = 1 << 20

_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_.:/%,+\-]+$")
_ADDRESS_WORDS = {"dhcp", "syncdhcp", "nosyncdhcp"}
IpAddress = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]


class SetIpRefused(Exception):
    """The request cannot be applied; the message says why (logged, host told FAIL)."""


def shell_value(raw: str) -> Optional[str]:
    """The value of the right-hand side of ``name=...`` (quotes removed), or None."""
    raw = raw.strip()
    if raw[:1] in ('"', "'"):
        quote = raw[0]
        end = raw.find(quote, 1)
        if end < 0:
            return None
        rest = raw[end + 1:].strip()
        if rest and not rest.startswith("#"):
            return None
        return raw[1:end]
    value = raw.split("#", 1)[0].strip()
    return value if " " not in value and "\t" not in value else None


def assignments(lines: Sequence[str]) -> Dict[str, Tuple[int, str]]:
    """name -> (line number, value) of every plain assignment; the last one wins."""
    found: Dict[str, Tuple[int, str]] = {}
    for number, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if match:
            value = shell_value(match.group(2))
            if value is not None:
                found[match.group(1)] = (number, value)
    return found


def read_lines(path: str) -> List[str]:
    try:
        data = files.read_bounded(path, RC_CONF_LIMIT)
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").split("\n")


def dhcp_enabled(lines: Sequence[str], names: Sequence[str]) -> bool:
    """rc.subr's ``dhcpif``: the first of ``names`` with an ifconfig_ value says (DEFAULT last)."""
    values = assignments(lines)
    for name in [*names, "DEFAULT"]:
        entry = values.get(f"ifconfig_{name}")
        if entry is not None:
            return any(word.lower() in ("dhcp", "syncdhcp") for word in entry[1].split())
    return False


def managed_block(lines: Sequence[str]) -> Optional[Tuple[int, int]]:
    """(index of BEGIN, index of END) of the one managed block; None when there is none."""
    begins = [n for n, line in enumerate(lines) if line.rstrip("\r") == BEGIN]
    ends = [n for n, line in enumerate(lines) if line.rstrip("\r") == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        return None
    return begins[0], ends[0]


@dataclass(frozen=True)
class Request:
    """A SET_IP_INFO request, parsed: nothing here came through unchecked."""

    interface: str
    dhcp: bool
    addresses: Tuple[IpAddress, ...]
    gateways: Tuple[str, ...]


def _entries(text: str) -> List[str]:
    return [entry.strip() for entry in text.replace(",", ";").split(";") if entry.strip()][:64]


def parse_request(interface: str, dhcp: int, ip_addr: str, sub_net: str,
                  gate_way: str) -> Request:
    """The host's fields as addresses; SetIpRefused names the first one that is wrong."""
    if not re.match(r"^hn[0-9]{1,5}$", interface):
        raise SetIpRefused(f"adapter {interface[:80]!r} is not an hn interface of this guest")
    addresses: List[IpAddress] = []
    masks = _entries(sub_net)
    if not dhcp:
        for position, text in enumerate(_entries(ip_addr)):
            mask = masks[position] if position < len(masks) else ""
            try:
                address = ipaddress.ip_address(text)
                if mask.startswith("/"):
                    mask = mask[1:]
                if not mask:
                    mask = "32" if address.version == 4 else "64"
                addresses.append(ipaddress.ip_interface(f"{address}/{mask}"))
            except ValueError:
                raise SetIpRefused(f"address {text[:60]!r} with subnet {mask[:60]!r}"
                                   " is not an IP address and mask") from None
        if not addresses:
            raise SetIpRefused("neither DHCP nor an address was given")
    gateways = []
    for text in _entries(gate_way):
        try:
            gateways.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise SetIpRefused(f"gateway {text[:60]!r} is not an IP address") from None
    return Request(interface, bool(dhcp), tuple(addresses), tuple(gateways))


def _address_words(value: str) -> Tuple[List[str], List[str]]:
    """(the words before the address, the words after it) of an ifconfig_ value."""
    words = value.split()
    kept_before: List[str] = []
    kept_after: List[str] = []
    seen_address = False
    position = 0
    while position < len(words):
        word = words[position]
        lowered = word.lower()
        if lowered in _ADDRESS_WORDS:
            seen_address = True
            position += 1
            continue
        if lowered in ("inet", "inet6"):
            seen_address = True
            position += 2
            while position + 1 < len(words) and words[position] in (
                    "netmask", "broadcast", "prefixlen"):
                position += 2
            continue
        (kept_after if seen_address else kept_before).append(word)
        position += 1
    for word in kept_before + kept_after:
        if not _SAFE_WORD.match(word):
            raise SetIpRefused(f"the managed value holds {word[:40]!r}; not rewriting it")
    return kept_before, kept_after


def _inet_words(address: IpAddress) -> List[str]:
    if address.version == 4:
        return ["inet", f"{address.ip}/{address.network.prefixlen}"]
    return ["inet6", str(address.ip), "prefixlen", str(address.network.prefixlen)]


@dataclass(frozen=True)
class Change:
    path: str
    variable: str
    old: str
    new: str
    target: str  # the interface whose settings changed (the lagg or the hn)


def apply(path: str, request: Request) -> Change:
    """Rewrite the managed block of ``path`` for ``request``; SetIpRefused leaves it alone."""
    try:
        lines = read_lines(path)
    except OSError as exc:
        raise SetIpRefused(f"{path}: {exc.strerror or exc}") from None
    block = managed_block(lines)
    if block is None:
        raise SetIpRefused(f"{path} has no single hvbsd managed block: hvbsd does not"
                           f" manage {request.interface}")
    begin, end = block
    inside = lines[begin + 1:end]
    values = assignments(inside)
    hn = request.interface
    if f"ifconfig_{hn}" not in values:
        raise SetIpRefused(f"hvbsd does not manage {hn}: no ifconfig_{hn} in the managed"
                           f" block of {path}")
    target = hn
    for name, (_, value) in values.items():
        words = value.split()
        if (name.startswith("ifconfig_") and name != f"ifconfig_{hn}"
                and "laggport" in words and hn in words[words.index("laggport") + 1:]
                and re.match(r"^ifconfig_lagg[0-9]+$", name)):
            target = name[len("ifconfig_"):]
    variable = f"ifconfig_{target}"
    old = values[variable][1]
    before, after = _address_words(old)
    v4 = [a for a in request.addresses if a.version == 4]
    v6 = [a for a in request.addresses if a.version == 6]
    if request.dhcp:
        primary = ["DHCP"]
        extra: List[IpAddress] = []
        first6: Optional[IpAddress] = None
    else:
        primary = _inet_words(v4[0]) if v4 else []
        extra = v4[1:] + v6[1:]
        first6 = v6[0] if v6 else None
    new = " ".join(before + primary + after) or "up"
    generated: Dict[str, Optional[str]] = {variable: new}
    if not request.dhcp:
        generated[f"{variable}_ipv6"] = " ".join(_inet_words(first6)) if first6 else None
    for name in values:
        if re.match(rf"^{re.escape(variable)}_alias[0-9]+$", name):
            generated[name] = None
    for number, address in enumerate(extra):
        generated[f"{variable}_alias{number}"] = " ".join(_inet_words(address))
    gateway4 = next((g for g in request.gateways if ":" not in g), None)
    gateway6 = next((g for g in request.gateways if ":" in g), None)
    generated["defaultrouter"] = gateway4
    generated["ipv6_defaultrouter"] = gateway6
    if request.dhcp:
        generated.pop("defaultrouter")
        generated.pop("ipv6_defaultrouter")
    new_inside = _rewrite(inside, generated)
    data = "\n".join(lines[:begin + 1] + new_inside + lines[end:])
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        files.write_atomically(path, data.encode("utf-8", errors="surrogateescape"), mode)
    except OSError as exc:
        raise SetIpRefused(f"{path}: cannot write: {exc.strerror or exc}") from None
    return Change(path, variable, old, new, target)


def _rewrite(inside: List[str], generated: Dict[str, Optional[str]]) -> List[str]:
    """The block's lines with each generated variable set (None: removed) in place."""
    result: List[str] = []
    done = set()
    for line in inside:
        match = _ASSIGNMENT.match(line)
        name = match.group(1) if match else None
        if name in generated:
            if name not in done and generated[name] is not None:
                result.append(f'{name}="{generated[name]}"')
            done.add(name)
            continue
        result.append(line)
    for name, value in generated.items():
        if name not in done and value is not None:
            result.append(f'{name}="{value}"')
    return result
