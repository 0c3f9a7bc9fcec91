"""ifconfig(8) of FreeBSD 14 over the simulated kernel.

Options as sbin/ifconfig/ifconfig.c's args_parse reads them with getopt(3)
(bundled: ``-ul``, ``-au``...), ``-C`` listing the cloners (ifclone.c),
``-g``/``-G`` groups (ifgroup.c).
Listing (``-a``, ``-l``, ``-u``, ``-d``, ``-g``, one interface, one family),
cloning (``create``/``destroy`` for lagg, epair, bridge, tap), ``name``,
``up``/``down``, ``mtu``, ``ether``, ``description``, ``inet``/``inet6``
addresses with ``alias``/``-alias``/``delete``/``netmask``/``prefixlen``,
the nd6 flags, and lagg(4)'s ``laggproto``/``laggport``/``-laggport``/
``lagghash``.  Output lines and error messages follow FreeBSD 14's.
"""

from __future__ import annotations

import errno
import ipaddress
import sys
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError, kernel, strerror
from hvbsd.sim.kernel import (
    CAPABILITY_BITS,
    EPAIR_CAPABILITIES,
    IFF_BITS,
    LAGG_CAPABILITIES,
    LAGG_PORT_BITS,
    LAGG_PROTOCOLS,
    ND6_BITS,
    Inet6Address,
    InetAddress,
    Interface,
    KernelError,
    State,
    random_local_mac,
    split_name,
)

PROGRAM = "ifconfig"
CLONERS = ("lagg", "epair", "bridge", "tap")
FAMILIES = ("inet", "inet6", "link", "ether", "lladdr")

ND6_KEYWORDS = {
    "nud": "PERFORMNUD",
    "accept_rtadv": "ACCEPT_RTADV",
    "prefer_source": "PREFER_SOURCE",
    "ifdisabled": "IFDISABLED",
    "auto_linklocal": "AUTO_LINKLOCAL",
    "no_radr": "NO_RADR",
    "no_prefer_iface": "NO_PREFER_IFACE",
    "no_dad": "NO_DAD",
}


class Failure(Exception):
    """err(3)/errx(3): print and exit 1."""


def printb(label: str, value: int, bits: dict[str, int]) -> str:
    """printb() of ifconfig: ``label=hex<NAME,NAME>``."""
    names = [name for name, bit in bits.items() if value & bit]
    return f"{label}={value:x}<{','.join(names)}>"


def _bits(names: list[str], table: dict[str, int]) -> int:
    value = 0
    for name in names:
        value |= table.get(name, 0)
    return value


def _netmask_hex(prefixlen: int) -> str:
    mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0
    return f"0x{mask:08x}"


def format_status(state: State, interface: Interface, family: Optional[str]) -> str:
    lines = []
    flags = state.display_flags(interface)
    lines.append(
        f"{interface.name}: {printb('flags', flags, IFF_BITS)} metric 0 mtu {interface.mtu}"
    )
    if interface.description:
        lines.append(f"\tdescription: {interface.description}")
    if interface.capabilities:
        lines.append("\t" + printb("options", interface.capabilities, CAPABILITY_BITS))
    if interface.ether and family in (None, "link", "ether", "lladdr"):
        lines.append(f"\tether {interface.ether}")
        if interface.hwaddr and interface.hwaddr != interface.ether:
            lines.append(f"\thwaddr {interface.hwaddr}")
    if family in (None, "inet"):
        for address in interface.inet:
            line = f"\tinet {address.address} netmask {_netmask_hex(address.prefixlen)}"
            if address.broadcast:
                line += f" broadcast {address.broadcast}"
            lines.append(line)
    if family in (None, "inet6"):
        for address6 in interface.inet6:
            shown = address6.address
            if address6.scopeid is not None:
                shown += f"%{interface.name}"
            line = f"\tinet6 {shown} prefixlen {address6.prefixlen}"
            for flag in address6.flags:
                line += f" {flag}"
            if address6.scopeid is not None:
                line += f" scopeid 0x{address6.scopeid:x}"
            lines.append(line)
    if family is None:
        if interface.is_lagg:
            line = f"\tlaggproto {interface.lagg_proto}"
            if interface.lagg_hash:
                line += " lagghash " + ",".join(interface.lagg_hash)
            lines.append(line)
            for port in interface.lagg_ports:
                port_flags = state.lagg_port_flags(interface, port)
                lines.append(f"\tlaggport: {port} {printb('flags', port_flags, LAGG_PORT_BITS)}")
        if interface.groups:
            lines.append("\tgroups: " + " ".join(interface.groups))
        if interface.media:
            lines.append(f"\tmedia: {interface.media}")
            active = state.link_of(interface) == "up"
            lines.append("\tstatus: " + ("active" if active else "no carrier"))
    if family in (None, "inet6") and interface.nd6 is not None:
        lines.append("\t" + printb("nd6 options", _bits(interface.nd6, ND6_BITS), ND6_BITS))
    return "\n".join(lines) + "\n"


def _selected(state: State, up_only: bool, down_only: bool, family: Optional[str]) -> list:
    chosen = []
    for interface in state.interfaces:
        if up_only and not interface.is_up:
            continue
        if down_only and interface.is_up:
            continue
        if family in ("link", "ether", "lladdr") and not interface.ether:
            continue
        chosen.append(interface)
    return chosen


# -- setting things ---------------------------------------------------------------


def _link_local(interface: Interface) -> Inet6Address:
    mac = (interface.hwaddr or interface.ether or "02:00:00:00:00:01").split(":")
    octets = [int(part, 16) for part in mac]
    octets[0] ^= 0x02
    eui = [*octets[:3], 255, 254, *octets[3:]]
    groups = [f"{(eui[i] << 8) | eui[i + 1]:x}" for i in range(0, 8, 2)]
    address = str(ipaddress.IPv6Address("fe80::" + ":".join(groups)))
    return Inet6Address(address, 64, [], interface.index)


def _ensure_link_local(interface: Interface) -> None:
    """in6_ifattach: a link-local address for an up interface with IPv6 enabled.

    The kernel runs it only on a change (sys/netinet6/nd6.c nd6_ioctl
    SIOCSIFINFO_FLAGS: IFDISABLED cleared or AUTO_LINKLOCAL set; sys/net/if.c
    if_up -> in6_if_up: the interface coming up), never on an address change
    alone, so a link-local address removed stays removed until one of those.
    """
    if (
        interface.is_up
        and "IFDISABLED" not in interface.nd6
        and "AUTO_LINKLOCAL" in interface.nd6
        and not interface.has_link_local
        and interface.driver != "lo"
    ):
        interface.inet6.insert(0, _link_local(interface))


def _parse_address(text: str, version: int) -> tuple[str, Optional[int]]:
    """``address[/prefix]`` of inet (version 4) or inet6 (6, where ``%zone`` is dropped)."""
    address, _, prefix = text.partition("/")
    if version == 6:
        address = address.split("%", 1)[0]
    try:
        parsed = ipaddress.IPv6Address(address) if version == 6 else ipaddress.IPv4Address(address)
    except ValueError:
        raise Failure(f"{text}: bad value") from None
    if prefix:
        if not prefix.isdigit() or int(prefix) > parsed.max_prefixlen:
            raise Failure(f"{text}: bad value")
        return str(parsed), int(prefix)
    return str(parsed), None


def _parse_netmask(text: str) -> int:
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(ipaddress.IPv4Address(text))
    except ValueError:
        raise Failure(f"{text}: bad value") from None
    prefix = bin(value).count("1")
    if value != ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0):
        raise Failure(f"{text}: bad value")
    return prefix


def _classful(address: str) -> int:
    first = int(address.split(".")[0])
    if first < 128:
        return 8
    if first < 192:
        return 16
    return 24


class Request:
    """The parameters of one command line, applied in FreeBSD's order."""

    def __init__(self) -> None:
        self.family = "inet"
        self.address: Optional[str] = None
        self.prefixlen: Optional[int] = None
        self.alias = False
        self.delete = False
        self.exit_code = 0


def _apply_address(state: State, interface: Interface, request: Request) -> None:
    if request.family == "inet":
        _apply_inet(interface, request)
    elif request.family == "inet6":
        _apply_inet6(interface, request)


def _apply_inet(interface: Interface, request: Request) -> None:
    if request.delete:
        target = None
        if request.address is None:
            target = interface.inet[0] if interface.inet else None
        else:
            target = next((a for a in interface.inet if a.address == request.address), None)
        if target is None:
            raise Failure(f"ioctl (SIOCDIFADDR): {strerror(errno.EADDRNOTAVAIL)}")
        interface.inet.remove(target)
        return
    if request.address is None:
        return
    prefixlen = request.prefixlen if request.prefixlen is not None else _classful(request.address)
    network = ipaddress.IPv4Network(f"{request.address}/{prefixlen}", strict=False)
    broadcast = None
    if "BROADCAST" in interface.flags:
        broadcast = str(network.broadcast_address)
    new = InetAddress(request.address, prefixlen, broadcast)
    existing = next((a for a in interface.inet if a.address == request.address), None)
    if existing is not None:
        existing.prefixlen, existing.broadcast = new.prefixlen, new.broadcast
    elif request.alias or not interface.inet:
        interface.inet.append(new)
    else:
        # Without "alias" the first address of the family is replaced.
        interface.inet[0] = new
    if not interface.is_up:
        interface.flags.append("UP")  # assigning an address brings the interface up


def _apply_inet6(interface: Interface, request: Request) -> None:
    if request.delete:
        if request.address is None:
            target = next((a for a in interface.inet6), None)
        else:
            target = next((a for a in interface.inet6 if a.address == request.address), None)
        if target is None:
            raise Failure(f"ioctl (SIOCDIFADDR_IN6): {strerror(errno.EADDRNOTAVAIL)}")
        interface.inet6.remove(target)
        return
    if request.address is None:
        return
    prefixlen = request.prefixlen if request.prefixlen is not None else 64
    scope = interface.index if request.address.startswith("fe80:") else None
    new = Inet6Address(request.address, prefixlen, [], scope)
    existing = next((a for a in interface.inet6 if a.address == request.address), None)
    if existing is not None:
        existing.prefixlen = prefixlen
    else:
        interface.inet6.append(new)
    if not interface.is_up:
        interface.flags.append("UP")


def _create(state: State, requested: str) -> tuple[Interface, bool]:
    """SIOCIFCREATE2: returns the new interface and whether its name was chosen here."""
    driver = requested.rstrip("0123456789")
    if driver not in CLONERS:
        raise Failure(f"SIOCIFCREATE2 ({requested}): {strerror(errno.EINVAL)}")
    chosen = driver == requested
    unit = state.next_unit(driver) if chosen else split_name(requested)[1]
    if driver == "epair":
        names = [f"epair{unit}a", f"epair{unit}b"]
        if any(state.find(n) for n in names) or any(
            i.driver == "epair" and i.unit == unit for i in state.interfaces
        ):
            raise Failure(f"SIOCIFCREATE2 ({requested}): {strerror(errno.EEXIST)}")
        created = []
        for name in names:
            mac = random_local_mac(f"{state.hostname}-{name}-{state.generation}")
            created.append(
                state.add_interface(
                    Interface(
                        name=name,
                        driver="epair",
                        unit=unit,
                        index=0,
                        flags=["BROADCAST", "SIMPLEX", "MULTICAST"],
                        ether=mac,
                        hwaddr=mac,
                        capabilities=EPAIR_CAPABILITIES,
                        nd6=["PERFORMNUD", "IFDISABLED", "AUTO_LINKLOCAL"],
                        groups=["epair"],
                        media="Ethernet 10Gbase-T (10Gbase-T <full-duplex>)",
                        cloned=True,
                    )
                )
            )
        created[0].peer, created[1].peer = names[1], names[0]
        return created[0], True
    name = f"{driver}{unit}"
    if state.find(name) is not None:
        raise Failure(f"SIOCIFCREATE2 ({name}): {strerror(errno.EEXIST)}")
    mac = random_local_mac(f"{state.hostname}-{name}-{state.generation}")
    interface = Interface(
        name=name,
        driver=driver,
        unit=unit,
        index=0,
        flags=["BROADCAST", "SIMPLEX", "MULTICAST"],
        ether=mac,
        hwaddr=mac,
        nd6=["PERFORMNUD", "IFDISABLED", "AUTO_LINKLOCAL"],
        groups=[driver],
        cloned=True,
    )
    if driver == "lagg":
        interface.hwaddr = None  # lagg(4) has no permanent address of its own
        interface.lagg_proto = "failover"
        interface.lagg_hash = ["l2", "l3", "l4"]
        interface.capabilities = LAGG_CAPABILITIES
        interface.media = "Ethernet autoselect"
    elif driver == "tap":
        interface.media = "Ethernet autoselect"
        interface.link = "down"
    else:
        interface.link = "up"
    return state.add_interface(interface), chosen


def _destroy(state: State, interface: Interface) -> None:
    if not interface.cloned:
        raise Failure(f"SIOCIFDESTROY: {strerror(errno.EINVAL)}")
    peer = interface.peer
    state.remove_interface(interface.name)
    if peer and state.find(peer):
        state.remove_interface(peer)


def _rename(state: State, interface: Interface, new_name: str) -> None:
    if state.find(new_name) is not None:
        raise Failure(f"ioctl SIOCSIFNAME (set name): {strerror(errno.EEXIST)}")
    if not new_name or len(new_name) > 15 or not new_name.isprintable() or " " in new_name:
        raise Failure(f"ioctl SIOCSIFNAME (set name): {strerror(errno.EINVAL)}")
    old = interface.name
    interface.name = new_name
    for other in state.interfaces:
        if other.laggdev == old:
            other.laggdev = new_name
        if other.vf == old:
            other.vf = new_name
        if other.peer == old:
            other.peer = new_name
        other.lagg_ports = [new_name if p == old else p for p in other.lagg_ports]


def _set_ether(interface: Interface, text: str) -> None:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) and _is_hex(p) for p in parts):
        raise Failure("malformed link-level address")
    interface.ether = ":".join(f"{int(p, 16):02x}" for p in parts)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text) and bool(text)


def _need(args: list[str], position: int, keyword: str) -> str:
    if position + 1 >= len(args):
        raise Failure(f"'{keyword}' requires argument")
    return args[position + 1]


def configure(state: State, name: str, args: list[str], out: list[str]) -> int:
    """Apply ``args`` to interface ``name``; returns the exit code."""
    request = Request()
    interface = state.find(name)
    position = 0
    if args and args[0] == "create":
        if interface is not None:
            raise Failure(f"SIOCIFCREATE2 ({name}): {strerror(errno.EEXIST)}")
        interface, print_name = _create(state, name)
        if print_name:
            out.append(interface.name)
        position = 1
    elif interface is None:
        raise Failure(f"interface {name} does not exist")
    assert interface is not None
    pending_address = False
    while position < len(args):
        word = args[position]
        if word in FAMILIES:
            request.family = "inet" if word == "inet" else ("inet6" if word == "inet6" else "link")
        elif word == "destroy":
            _destroy(state, interface)
            return request.exit_code
        elif word == "up":
            if not interface.is_up:  # if.c ifhwioctl: if_up only on the transition
                interface.flags.append("UP")
                _ensure_link_local(interface)
        elif word == "down":
            if interface.is_up:
                interface.flags.remove("UP")
        elif word == "mtu":
            value = _need(args, position, word)
            if not value.isdigit() or not 72 <= int(value) <= 65535:
                raise Failure(f"ioctl SIOCSIFMTU (set mtu): {strerror(errno.EINVAL)}")
            interface.mtu = int(value)
            position += 1
        elif word in ("ether", "lladdr") and request.family != "link":
            _set_ether(interface, _need(args, position, word))
            position += 1
        elif word in ("description", "descr"):
            interface.description = _need(args, position, word)
            position += 1
        elif word in ("-description", "-descr"):
            interface.description = None
        elif word == "name":
            new_name = _need(args, position, word)
            _rename(state, interface, new_name)
            out.append(new_name)
            position += 1
        elif word == "create":
            raise Failure(f"SIOCIFCREATE2 ({interface.name}): {strerror(errno.EEXIST)}")
        elif word == "alias" or word == "add":
            request.alias = True
        elif word in ("-alias", "delete", "remove"):
            request.delete = True
            request.alias = True
        elif word == "netmask":
            request.prefixlen = _parse_netmask(_need(args, position, word))
            position += 1
        elif word == "prefixlen":
            value = _need(args, position, word)
            if not value.isdigit() or int(value) > 128:
                raise Failure(f"{value}: bad value")
            request.prefixlen = int(value)
            position += 1
        elif word == "broadcast":
            _need(args, position, word)
            position += 1
        elif word == "laggproto":
            proto = _need(args, position, word)
            if proto not in LAGG_PROTOCOLS:
                raise Failure(f"Invalid aggregation protocol: {proto}")
            if not interface.is_lagg:
                raise Failure(f"SIOCSLAGG: {strerror(errno.ENOTTY)}")
            interface.lagg_proto = proto
            position += 1
        elif word == "lagghash":
            value = _need(args, position, word)
            parts = value.split(",")
            for part in parts:
                if part not in ("l2", "l3", "l4"):
                    raise Failure(f"Invalid lagghash option: {part}")
            if not interface.is_lagg:
                raise Failure(f"SIOCSLAGGHASH: {strerror(errno.ENOTTY)}")
            interface.lagg_hash = [h for h in ("l2", "l3", "l4") if h in parts]
            position += 1
        elif word == "laggport":
            port_name = _need(args, position, word)
            position += 1
            try:
                if not interface.is_lagg:
                    raise KernelError(errno.ENOTTY)
                port = state.find(port_name)
                if port is None:
                    raise KernelError(errno.EINVAL)
                state.lagg_add_port(interface, port)
            except KernelError as error:
                # FreeBSD 14 ignores EEXIST and only warns on other failures,
                # so one bad port does not take down a whole lagg line.
                if error.errno != errno.EEXIST:
                    sys.stderr.write(
                        f"{PROGRAM}: {interface.name} {port_name}: SIOCSLAGGPORT: "
                        f"{strerror(error.errno)}\n"
                    )
                    request.exit_code = 1
        elif word == "-laggport":
            port_name = _need(args, position, word)
            position += 1
            port = state.find(port_name)
            if port is None or not interface.is_lagg:
                raise Failure(f"SIOCSLAGGDELPORT: {strerror(errno.EINVAL)}")
            try:
                state.lagg_remove_port(interface, port)
            except KernelError as error:
                raise Failure(f"SIOCSLAGGDELPORT: {strerror(error.errno)}") from None
        elif word.lstrip("-") in ND6_KEYWORDS:
            flag = ND6_KEYWORDS[word.lstrip("-")]
            changed = (flag in interface.nd6) == word.startswith("-")
            if word.startswith("-"):
                if flag in interface.nd6:
                    interface.nd6.remove(flag)
            elif flag not in interface.nd6:
                interface.nd6.append(flag)
                interface.nd6.sort(key=lambda f: ND6_BITS[f])
            # nd6_ioctl: "ifdisabled 1->0" runs in6_if_up, "auto_linklocal 0->1"
            # in6_ifattach; other flag writes configure no link-local address
            if changed and (flag, word.startswith("-")) in (
                ("IFDISABLED", True), ("AUTO_LINKLOCAL", False)):
                _ensure_link_local(interface)
        elif word.startswith("-") and word not in ("-",):
            raise Failure(f"{word}: bad value")
        else:
            if pending_address:
                # A second address is a destination; FreeBSD accepts it for p2p links.
                position += 1
                continue
            if request.family == "inet":
                request.address, prefix = _parse_address(word, 4)
            elif request.family == "inet6":
                request.address, prefix = _parse_address(word, 6)
            else:
                _set_ether(interface, word)
                position += 1
                continue
            if prefix is not None:
                request.prefixlen = prefix
            pending_address = True
        position += 1
    if pending_address or request.delete:
        was_up = interface.is_up
        _apply_address(state, interface, request)
        if (request.family == "inet6" and not request.delete and request.address is not None
                and "IFDISABLED" in interface.nd6):
            # in6.c in6_control SIOCAIFADDR_IN6 (aifaddr_out): an address added
            # to an IFDISABLED interface clears the flag through nd6_ioctl
            interface.nd6.remove("IFDISABLED")
            _ensure_link_local(interface)
        elif not was_up and interface.is_up:
            _ensure_link_local(interface)  # the address brought the interface up
    return request.exit_code


USAGE = """usage: ifconfig [-j jail] [-f type:format] [-L] [-C] [-g groupname] interface
\taddress_family [address [dest_address]] [parameters]
       ifconfig [-j jail] interface create
       ifconfig [-j jail] -a [-L] [-C] [-g groupname] [-d] [-m] [-u] [-v]
\t[address_family]
       ifconfig [-j jail] -l [-d] [-u] [address_family]
       ifconfig [-j jail] [-d] [-m] [-u] [-v]
"""


class _Usage(Exception):
    """usage(): the text on stderr, exit 1."""


# Options of ifconfig.c's args_parse ("G:adDf:j:klmnuv") and those the other
# files register with opt_register(): ifclone.c "C", ifgroup.c "g:",
# af_inet6.c "L".
_OPTIONS = "G:adDf:j:klmnuvCg:L"


def _parse(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """getopt(3) over the leading options as FreeBSD's args_parse, flags bundled."""
    parsed: dict[str, object] = {}
    options = GetOpt(argv, _OPTIONS)
    try:
        for letter, value in options:
            if letter == "G":
                if not parsed.get("a"):
                    raise _Usage
                parsed["G"] = value
            elif letter == "g" and not parsed.get("a"):
                # ifgroup.c printgroup(): the group's members, one a line, then exit
                parsed["printgroup"] = value
                return parsed, []
            elif letter == "C":
                # ifclone.c clone_Copt_cb(): list_cloners() and exit at once
                parsed["C"] = True
                return parsed, []
            else:
                parsed[letter] = value if letter in "fgj" else True
    except UsageError as error:
        sys.stderr.write(error.message(PROGRAM))
        raise _Usage from None
    rest = options.operands
    if parsed.get("l") and (parsed.get("a") or parsed.get("m")):
        raise _Usage
    if parsed.get("u") and parsed.get("d"):
        raise _Usage
    if not parsed.get("l") and not rest:
        parsed["a"] = True
    if parsed.get("a") or parsed.get("l"):
        if len(rest) > 1:
            raise _Usage
        if rest and rest[0] not in FAMILIES:
            sys.stderr.write(f"{PROGRAM}: Address family '{rest[0]}' unknown.\n")
            raise _Usage
    return parsed, rest


def main(argv: list[str]) -> int:
    try:
        parsed, rest = _parse(argv)
    except _Usage:
        sys.stderr.write(USAGE)
        return 1
    if parsed.get("C"):
        sys.stdout.write(" ".join(CLONERS) + "\n")
        return 0
    if "j" in parsed:
        sys.stderr.write(f"{PROGRAM}: jail \"{parsed['j']}\" not found\n")
        return 1
    if "printgroup" in parsed:
        state = kernel().snapshot()
        for interface in state.interfaces:
            if parsed["printgroup"] in interface.groups:
                sys.stdout.write(interface.name + "\n")
        return 0
    list_all = bool(parsed.get("a"))
    names_only = bool(parsed.get("l"))
    up_only = bool(parsed.get("u"))
    down_only = bool(parsed.get("d"))
    group = parsed.get("g")
    nogroup = parsed.get("G")
    try:
        if names_only or list_all or not rest:
            family = rest[0] if rest else None
            if family is not None and family not in FAMILIES:
                sys.stderr.write(USAGE)
                return 1
            state = kernel().snapshot()
            chosen = _selected(state, up_only, down_only, family)
            if group is not None:
                chosen = [i for i in chosen if group in i.groups]
            if nogroup is not None:
                chosen = [i for i in chosen if nogroup not in i.groups]
            if names_only:
                # list_interfaces(): with a family, -l names those holding such an address
                if family == "inet":
                    chosen = [i for i in chosen if i.inet]
                elif family == "inet6":
                    chosen = [i for i in chosen if i.inet6]
                sys.stdout.write(" ".join(i.name for i in chosen) + "\n")
            else:
                shown = "link" if family in ("ether", "lladdr") else family
                for interface in chosen:
                    sys.stdout.write(format_status(state, interface, shown))
            return 0
        name, args = rest[0], rest[1:]
        if not args or (len(args) == 1 and args[0] in FAMILIES):
            state = kernel().snapshot()
            interface = state.find(name)
            if interface is None:
                raise Failure(f"interface {name} does not exist")
            family = args[0] if args else None
            if family in ("ether", "lladdr"):
                family = "link"
            sys.stdout.write(format_status(state, interface, family))
            return 0
        out: list[str] = []
        failure: Optional[Failure] = None
        with kernel().transaction() as state:
            # Like the real ioctls, whatever succeeded before a failure stays done.
            try:
                code = configure(state, name, args, out)
            except Failure as caught:
                failure, code = caught, 1
        for line in out:
            sys.stdout.write(line + "\n")
        if failure is not None:
            raise failure
        return code
    except Failure as failure:
        sys.stderr.write(f"{PROGRAM}: {failure}\n")
        return 1
    except KernelError as error:
        sys.stderr.write(f"{PROGRAM}: {error}\n")
        return 1
