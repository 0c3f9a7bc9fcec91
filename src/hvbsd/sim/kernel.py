"""The simulated FreeBSD kernel's state: one JSON document per guest.

``Kernel(directory)`` works over ``kernel.json`` and ``kernel.lock`` in that
directory.  Every change happens in ``with kernel.transaction() as state:``
(exclusive ``flock``; the new document is written atomically on a clean exit
and not at all if the block raises).  ``kernel.snapshot()`` reads under a
shared lock.  The FreeBSD commands (``hvbsd.sim.freebsd``) and the simulated
host are the only writers.

Only the standard library is used: the commands import this module at every
start, so it stays small and quick to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

DEFAULT_KERNEL_DIR = "/var/run/hvbsd-sim"
KERNEL_DIR_ENV = "HVBSD_SIM_KERNEL_DIR"
# kernel.json of a guest with 8 NICs is a few hundred kB; anything far larger is not ours.
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_LOADER_BYTES = 1024 * 1024


# Flag bits as sys/net/if.h, netinet6/nd6.h and net/if_lagg.h define them.
IFF_BITS: dict[str, int] = {
    "UP": 0x1,
    "BROADCAST": 0x2,
    "DEBUG": 0x4,
    "LOOPBACK": 0x8,
    "POINTOPOINT": 0x10,
    "RUNNING": 0x40,
    "NOARP": 0x80,
    "PROMISC": 0x100,
    "ALLMULTI": 0x200,
    "OACTIVE": 0x400,
    "SIMPLEX": 0x800,
    "LINK0": 0x1000,
    "LINK1": 0x2000,
    "LINK2": 0x4000,
    "MULTICAST": 0x8000,
    "PPROMISC": 0x20000,
    "MONITOR": 0x40000,
    "STATICARP": 0x80000,
    "LOWER_UP": 0x1000000,
}
ND6_BITS: dict[str, int] = {
    "PERFORMNUD": 0x1,
    "ACCEPT_RTADV": 0x2,
    "PREFER_SOURCE": 0x4,
    "IFDISABLED": 0x8,
    "DONT_SET_IFROUTE": 0x10,
    "AUTO_LINKLOCAL": 0x20,
    "NO_RADR": 0x40,
    "NO_PREFER_IFACE": 0x80,
    "NO_DAD": 0x100,
}
LAGG_PORT_BITS: dict[str, int] = {
    "MASTER": 0x1,
    "STACK": 0x2,
    "ACTIVE": 0x4,
    "COLLECTING": 0x8,
    "DISTRIBUTING": 0x10,
}
CAPABILITY_BITS: dict[str, int] = {
    "RXCSUM": 0x1,
    "TXCSUM": 0x2,
    "NETCONS": 0x4,
    "VLAN_MTU": 0x8,
    "VLAN_HWTAGGING": 0x10,
    "JUMBO_MTU": 0x20,
    "POLLING": 0x40,
    "VLAN_HWCSUM": 0x80,
    "TSO4": 0x100,
    "TSO6": 0x200,
    "LRO": 0x400,
    "WOL_UCAST": 0x800,
    "WOL_MCAST": 0x1000,
    "WOL_MAGIC": 0x2000,
    "TOE4": 0x4000,
    "TOE6": 0x8000,
    "VLAN_HWFILTER": 0x10000,
    "VLAN_HWTSO": 0x40000,
    "LINKSTATE": 0x80000,
    "NETMAP": 0x100000,
    "RXCSUM_IPV6": 0x200000,
    "TXCSUM_IPV6": 0x400000,
    "HWSTATS": 0x800000,
}
LAGG_PROTOCOLS = ("failover", "lacp", "loadbalance", "roundrobin", "broadcast", "none")

# vfc_typenum of each filesystem: the second word of an fsid.
FS_TYPENUM = {"ufs": 0x35, "zfs": 0xDE, "devfs": 0x71, "tmpfs": 0x87, "fdescfs": 0x59}

HN_CAPABILITIES = 0x8051B  # RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,TSO4,LRO,LINKSTATE
VF_CAPABILITIES = 0x1A7BB  # what mlx5en(4) typically reports
LO_CAPABILITIES = 0x680003
EPAIR_CAPABILITIES = 0x8
LAGG_CAPABILITIES = 0x80000


class KernelError(Exception):
    """A request the simulated kernel refuses; ``errno`` says why, as FreeBSD's would."""

    def __init__(self, errno_value: int, message: str = "") -> None:
        super().__init__(message or os.strerror(errno_value))
        self.errno = errno_value


@dataclass
class InetAddress:
    address: str
    prefixlen: int
    broadcast: Optional[str] = None


@dataclass
class Inet6Address:
    address: str
    prefixlen: int
    # Address flags as ifconfig prints them: tentative, duplicated, deprecated, autoconf...
    flags: list[str] = field(default_factory=list)
    scopeid: Optional[int] = None


@dataclass
class Interface:
    name: str
    driver: str
    unit: int
    index: int
    flags: list[str] = field(default_factory=list)
    ether: Optional[str] = None
    hwaddr: Optional[str] = None
    mtu: int = 1500
    link: str = "up"  # "up", "down" or "unknown" (no media, e.g. lo0)
    capabilities: int = 0
    inet: list[InetAddress] = field(default_factory=list)
    inet6: list[Inet6Address] = field(default_factory=list)
    nd6: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    media: Optional[str] = None
    cloned: bool = False
    description: Optional[str] = None
    lagg_proto: Optional[str] = None
    lagg_ports: list[str] = field(default_factory=list)
    lagg_hash: list[str] = field(default_factory=list)
    laggdev: Optional[str] = None  # the lagg this interface is a port of
    vf: Optional[str] = None  # for hn(4): its VF's name
    peer: Optional[str] = None  # for epair(4): the other end

    @property
    def is_lagg(self) -> bool:
        return self.lagg_proto is not None

    @property
    def is_up(self) -> bool:
        return "UP" in self.flags

    @property
    def has_link_local(self) -> bool:
        return any(a.address.startswith("fe80:") for a in self.inet6)


@dataclass
class Sysctl:
    value: Any
    kind: str = "string"  # "int", "uint", "long", "ulong", "string"
    access: str = "rd"  # "rw", "rd" (read only), "rdtun" (loader tunable), "rwtun"
    description: str = ""

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "rwtun")

    @property
    def tunable(self) -> bool:
        return self.access in ("rdtun", "rwtun")


@dataclass
class Mount:
    fsid: list[int]  # two int32, as fsid_t
    fstype: str
    mountpoint: str
    source: str
    readonly: bool = False
    options: list[str] = field(default_factory=list)


@dataclass
class Lease:
    address: str
    hostname: str = ""


@dataclass
class HostNetwork:
    """The network behind the hn NICs, with the DHCP server the host offers."""

    subnet: str = "10.0.0.0/24"
    range_start: str = "10.0.0.4"
    range_end: str = "10.0.0.250"
    gateway: str = "10.0.0.1"
    leases: dict[str, Lease] = field(default_factory=dict)  # by MAC

    def lease_for(self, mac: str, hostname: str = "") -> Lease:
        """The lease of ``mac``, assigning the lowest free address the first time."""
        import ipaddress

        mac = mac.lower()
        if mac in self.leases:
            return self.leases[mac]
        taken = {lease.address for lease in self.leases.values()}
        start = int(ipaddress.IPv4Address(self.range_start))
        end = int(ipaddress.IPv4Address(self.range_end))
        for number in range(start, end + 1):
            candidate = str(ipaddress.IPv4Address(number))
            if candidate not in taken:
                lease = Lease(address=candidate, hostname=hostname)
                self.leases[mac] = lease
                return lease
        raise KernelError(28, f"no free address left in {self.range_start}-{self.range_end}")


@dataclass
class State:
    hostname: str = "freebsd"
    interfaces: list[Interface] = field(default_factory=list)
    sysctls: dict[str, Sysctl] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    suspended: list[list[int]] = field(default_factory=list)
    network: HostNetwork = field(default_factory=HostNetwork)
    packages: dict[str, str] = field(default_factory=dict)  # name -> version
    loader: dict[str, str] = field(default_factory=dict)
    pool_syncs: dict[str, int] = field(default_factory=dict)  # zpool sync count per pool
    next_index: int = 1
    generation: int = 0

    # -- interfaces ---------------------------------------------------------

    def find(self, name: str) -> Optional[Interface]:
        for interface in self.interfaces:
            if interface.name == name:
                return interface
        return None

    def interface(self, name: str) -> Interface:
        """The interface called ``name``; ENXIO as the kernel answers otherwise."""
        found = self.find(name)
        if found is None:
            raise KernelError(6, f"interface {name} does not exist")
        return found

    def add_interface(self, interface: Interface) -> Interface:
        if self.find(interface.name) is not None:
            raise KernelError(17, f"interface {interface.name} already exists")
        interface.index = self.next_index
        self.next_index += 1
        self.interfaces.append(interface)
        return interface

    def next_unit(self, driver: str) -> int:
        used = {i.unit for i in self.interfaces if i.driver == driver}
        unit = 0
        while unit in used:
            unit += 1
        return unit

    def remove_interface(self, name: str) -> Interface:
        """Detach ``name`` as the kernel does: lagg drops it, a lagg releases its ports."""
        interface = self.interface(name)
        if interface.laggdev is not None:
            lagg = self.find(interface.laggdev)
            if lagg is not None:
                self.lagg_remove_port(lagg, interface)
        for port_name in list(interface.lagg_ports):
            port = self.find(port_name)
            if port is not None:
                self.lagg_remove_port(interface, port)
        for other in self.interfaces:
            if other.vf == name:
                other.vf = None
        self.interfaces.remove(interface)
        return interface

    # -- lagg(4) ------------------------------------------------------------

    def lagg_add_port(self, lagg: Interface, port: Interface) -> None:
        """SIOCSLAGGPORT with lagg(4)'s checks and errno values."""
        if "IFDISABLED" not in port.nd6 and port.has_link_local:
            # sys/net/if_lagg.c lagg_ioctl SIOCSLAGGPORT, before any check: a
            # port with a link-local address (in6ifa_llaonifp) loses every
            # IPv6 address (in6_ifdetach): two link-local scope zones never merge
            port.inet6.clear()
        if port.laggdev is not None:
            raise KernelError(17 if port.laggdev == lagg.name else 16)
        if port.is_lagg or port.name == lagg.name or "LOOPBACK" in port.flags:
            raise KernelError(93)  # EPROTONOSUPPORT: not an Ethernet port
        if len(lagg.lagg_ports) >= 32:
            raise KernelError(28)
        if not lagg.lagg_ports:
            # The first port gives the lagg its MAC address and MTU.
            lagg.ether = port.hwaddr or port.ether
            lagg.mtu = port.mtu
        lagg.lagg_ports.append(port.name)
        port.laggdev = lagg.name
        port.ether = lagg.ether

    def lagg_remove_port(self, lagg: Interface, port: Interface) -> None:
        if port.laggdev != lagg.name or port.name not in lagg.lagg_ports:
            raise KernelError(2)
        was_primary = lagg.lagg_ports[0] == port.name
        lagg.lagg_ports.remove(port.name)
        port.laggdev = None
        port.ether = port.hwaddr or port.ether
        if was_primary and lagg.lagg_ports:
            # The next port becomes primary and the lagg takes its address.
            primary = self.find(lagg.lagg_ports[0])
            if primary is not None:
                lagg.ether = primary.hwaddr or primary.ether
                for name in lagg.lagg_ports:
                    member = self.find(name)
                    if member is not None:
                        member.ether = lagg.ether

    def port_usable(self, port: Interface) -> bool:
        """LAGG_PORTACTIVE: the port's link is up and the port is UP."""
        return self.link_of(port) == "up" and port.is_up

    def lagg_active_port(self, lagg: Interface) -> Optional[str]:
        """Failover: the first port from the primary on whose link is usable."""
        for name in lagg.lagg_ports:
            port = self.find(name)
            if port is not None and self.port_usable(port):
                return name
        return None

    def lagg_port_flags(self, lagg: Interface, port_name: str) -> int:
        flags = 0
        if lagg.lagg_ports and lagg.lagg_ports[0] == port_name:
            flags |= LAGG_PORT_BITS["MASTER"]
        if lagg.lagg_proto == "failover":
            if self.lagg_active_port(lagg) == port_name:
                flags |= LAGG_PORT_BITS["ACTIVE"]
        elif lagg.lagg_proto in ("loadbalance", "roundrobin", "broadcast"):
            port = self.find(port_name)
            if port is not None and self.port_usable(port):
                flags |= LAGG_PORT_BITS["ACTIVE"]
        return flags

    def link_of(self, interface: Interface) -> str:
        """Effective link state; a lagg's is up while it has an active port."""
        if interface.is_lagg:
            if interface.lagg_proto == "failover":
                return "up" if self.lagg_active_port(interface) else "down"
            for name in interface.lagg_ports:
                port = self.find(name)
                if port is not None and self.port_usable(port):
                    return "up"
            return "down"
        if interface.driver == "hn" and self.hn_datapath_on_vf(interface):
            return "down"
        return interface.link

    def hn_datapath_on_vf(self, hn: Interface) -> bool:
        """Non-transparent hn(4) hands its datapath to an UP VF and reports its own
        link down meanwhile, so a failover lagg moves ACTIVE to the VF."""
        transparent = self.sysctls.get("hw.hn.vf_transparent")
        if transparent is None or transparent.value != 0 or not hn.vf:
            return False
        vf = self.find(hn.vf)
        return vf is not None and vf.is_up

    def display_flags(self, interface: Interface) -> int:
        value = 0
        for flag in interface.flags:
            value |= IFF_BITS.get(flag, 0)
        if interface.is_up:
            value |= IFF_BITS["RUNNING"]
        if self.link_of(interface) == "up" or (interface.link == "unknown" and interface.is_up):
            value |= IFF_BITS["LOWER_UP"]
        return value

    # -- sysctl ----------------------------------------------------------------

    def sysctl_value(self, name: str) -> Any:
        return self.sysctls[name].value

    def refresh_hn_sysctls(self) -> None:
        """Keep hw.hn.vflist and dev.hn.N.vf/rxvf in step with the interfaces."""
        if "hw.hn.vflist" not in self.sysctls:
            return
        vfs = []
        for interface in self.interfaces:
            if interface.driver != "hn":
                continue
            prefix = f"dev.hn.{interface.unit}"
            vf_name = interface.vf if interface.vf and self.find(interface.vf) else ""
            if f"{prefix}.vf" in self.sysctls:
                self.sysctls[f"{prefix}.vf"].value = vf_name
            if f"{prefix}.rxvf" in self.sysctls:
                vf = self.find(vf_name) if vf_name else None
                self.sysctls[f"{prefix}.rxvf"].value = vf_name if vf and vf.is_up else ""
            if vf_name:
                vfs.append(vf_name)
        self.sysctls["hw.hn.vflist"].value = " ".join(vfs)

    # -- mounts -----------------------------------------------------------------

    def mount_at(self, mountpoint: str) -> Optional[Mount]:
        for mount in self.mounts:
            if mount.mountpoint == mountpoint:
                return mount
        return None


# -- (de)serialisation ---------------------------------------------------------


def _interface_from(data: dict[str, Any]) -> Interface:
    data = dict(data)
    data["inet"] = [InetAddress(**a) for a in data.get("inet", [])]
    data["inet6"] = [Inet6Address(**a) for a in data.get("inet6", [])]
    return Interface(**data)


def state_from_dict(data: dict[str, Any]) -> State:
    network = dict(data.get("network", {}))
    network["leases"] = {mac: Lease(**lease) for mac, lease in network.get("leases", {}).items()}
    return State(
        hostname=data.get("hostname", "freebsd"),
        interfaces=[_interface_from(i) for i in data.get("interfaces", [])],
        sysctls={name: Sysctl(**s) for name, s in data.get("sysctls", {}).items()},
        mounts=[Mount(**m) for m in data.get("mounts", [])],
        suspended=[list(f) for f in data.get("suspended", [])],
        network=HostNetwork(**network),
        packages=dict(data.get("packages", {})),
        loader=dict(data.get("loader", {})),
        pool_syncs=dict(data.get("pool_syncs", {})),
        next_index=int(data.get("next_index", 1)),
        generation=int(data.get("generation", 0)),
    )


def state_to_dict(state: State) -> dict[str, Any]:
    return dataclasses.asdict(state)


# -- the store -------------------------------------------------------------------


class Kernel:
    """One guest's kernel state in ``directory`` (``kernel.json`` + ``kernel.lock``)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "kernel.json"
        self.lock_path = self.directory / "kernel.lock"

    @classmethod
    def from_environment(cls) -> Kernel:
        return cls(os.environ.get(KERNEL_DIR_ENV) or DEFAULT_KERNEL_DIR)

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        try:
            # The guest can write this directory: never follow a link it left here.
            handle = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                             0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise KernelError(22, f"{self.lock_path}: is a symbolic link") from None
            if error.errno != errno.ENOENT:
                raise
            raise KernelError(
                2, f"no simulated kernel in {self.directory} (set {KERNEL_DIR_ENV})"
            ) from None
        try:
            fcntl.flock(handle, mode)
            yield
        finally:
            os.close(handle)

    def _read(self) -> State:
        try:
            handle = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise KernelError(
                2, f"no simulated kernel in {self.directory} (set {KERNEL_DIR_ENV})"
            ) from None
        except OSError as error:
            raise KernelError(22, f"{self.path}: {error.strerror}") from None
        with os.fdopen(handle, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise KernelError(22, f"{self.path}: not a regular file")
            data = stream.read(MAX_STATE_BYTES + 1)
        if len(data) > MAX_STATE_BYTES:
            raise KernelError(22, f"{self.path}: larger than {MAX_STATE_BYTES} bytes")
        text = data.decode("utf-8", errors="replace")
        try:
            return state_from_dict(json.loads(text))
        except (ValueError, TypeError) as error:
            raise KernelError(22, f"{self.path}: corrupt kernel state: {error}") from None

    def _write(self, state: State) -> None:
        import tempfile

        state.generation += 1
        state.refresh_hn_sysctls()
        payload = json.dumps(state_to_dict(state), indent=1, sort_keys=True) + "\n"
        handle, temporary = tempfile.mkstemp(prefix=".kernel.", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(payload)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def snapshot(self) -> State:
        """A consistent copy of the state, read under a shared lock."""
        with self._locked(fcntl.LOCK_SH):
            return self._read()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        """Exclusive access; the state is written back only if the block succeeds."""
        with self._locked(fcntl.LOCK_EX):
            state = self._read()
            yield state
            self._write(state)

    def exists(self) -> bool:
        return self.path.is_file()

    # -- creation ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str,
        hostname: str = "freebsd",
        preset: str = "ufs",
        nics: int = 1,
        old_kernel: bool = False,
        release: Any = None,
    ) -> Kernel:
        """A FreeBSD guest on Hyper-V: lo0, hn0..hn<nics-1>, its sysctls and mounts.

        ``release`` (an ``hvbsd.releases.Release``; the default release when
        None) gives kern.osrelease, kern.osreldate and kern.version.
        """
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r}: must be one of {', '.join(sorted(PRESETS))}")
        if not isinstance(nics, int) or nics < 0 or nics > 8:
            raise ValueError(f"nics {nics!r}: must be an integer from 0 to 8")
        if not hostname or any(c.isspace() or c in "'\"\\$`;" for c in hostname):
            raise ValueError(f"hostname {hostname!r}: must be a non-empty word")
        if release is None:
            from hvbsd import releases

            release = releases.default()
        kernel = cls(directory)
        kernel.directory.mkdir(parents=True, exist_ok=True)
        if kernel.exists():
            raise FileExistsError(f"{kernel.path}: a kernel state already exists")
        state = State(hostname=hostname)
        state.packages = {"pkg": "1.21.3", "python311": "3.11.9", "python3": "3_4"}
        state.sysctls = _base_sysctls(hostname, old_kernel, release)
        state.add_interface(_loopback())
        for unit in range(nics):
            add_hn(state, unit, old_kernel=old_kernel)
        state.mounts = [Mount(**m) for m in PRESETS[preset]]
        for mount in state.mounts:
            mount.fsid = _fsid(mount.source, mount.fstype)
        with kernel._locked(fcntl.LOCK_EX):
            kernel._write(state)
        return kernel

    # -- what the simulated host drives ----------------------------------------------

    def attach_vf(self, hn: str, vf_name: str) -> Interface:
        """A VF appears with the MAC of ``hn`` (as Hyper-V pairs them)."""
        with self.transaction() as state:
            hn_interface = state.interface(hn)
            if hn_interface.driver != "hn":
                raise KernelError(22, f"{hn} is not an hn(4) interface")
            driver, unit = split_name(vf_name)
            vf = Interface(
                name=vf_name,
                driver=driver,
                unit=unit,
                index=0,
                flags=["BROADCAST", "SIMPLEX", "MULTICAST"],
                ether=hn_interface.hwaddr,
                hwaddr=hn_interface.hwaddr,
                mtu=hn_interface.mtu,
                link="up",
                capabilities=VF_CAPABILITIES,
                nd6=["PERFORMNUD", "IFDISABLED", "AUTO_LINKLOCAL"],
                media="Ethernet autoselect (40Gbase-CR4 <full-duplex,rxpause,txpause>)",
            )
            state.add_interface(vf)
            hn_interface.vf = vf_name
            return vf

    def detach_vf(self, hn: str) -> Optional[str]:
        """The hn's VF disappears (hot-unplug); lagg drops it as a departed port."""
        with self.transaction() as state:
            hn_interface = state.interface(hn)
            vf_name = hn_interface.vf
            if vf_name and state.find(vf_name):
                state.remove_interface(vf_name)
            hn_interface.vf = None
            return vf_name

    def set_link(self, name: str, link: str) -> None:
        if link not in ("up", "down"):
            raise ValueError(f"link {link!r}: must be 'up' or 'down'")
        with self.transaction() as state:
            state.interface(name).link = link

    def add_nic(self) -> Interface:
        with self.transaction() as state:
            return add_hn(state, state.next_unit("hn"))

    def boot(self, boot_directory: Path | str) -> dict[str, str]:
        """Read loader.conf and loader.conf.d/*.conf, apply the tunables they set."""
        settings = read_loader_settings(Path(boot_directory))
        with self.transaction() as state:
            state.loader = settings
            for name, value in settings.items():
                oid = state.sysctls.get(name)
                if oid is not None and oid.tunable:
                    oid.value = _coerce(oid, value)
        return settings


# -- helpers for building a guest ---------------------------------------------------------


def split_name(name: str) -> tuple[str, int]:
    """``mce10`` -> (``mce``, 10); FreeBSD names are a driver plus a unit number."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    if not stem or not digits or not stem.isidentifier():
        raise KernelError(22, f"{name}: not a driver name followed by a unit number")
    return stem, int(digits)


def mac_for(seed: str) -> str:
    """A stable Hyper-V style MAC address (00:15:5d is Microsoft's prefix)."""
    import hashlib

    digest = hashlib.sha256(seed.encode()).digest()
    return "00:15:5d:" + ":".join(f"{b:02x}" for b in digest[:3])


def random_local_mac(seed: str) -> str:
    import hashlib

    digest = hashlib.sha256(seed.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def _fsid(source: str, fstype: str) -> list[int]:
    import hashlib

    first = int.from_bytes(hashlib.sha256(source.encode()).digest()[:4], "little", signed=True)
    return [first, FS_TYPENUM.get(fstype, 0x100)]


def _loopback() -> Interface:
    return Interface(
        name="lo0",
        driver="lo",
        unit=0,
        index=0,
        flags=["UP", "LOOPBACK", "MULTICAST"],
        mtu=16384,
        link="unknown",
        capabilities=LO_CAPABILITIES,
        inet=[InetAddress("127.0.0.1", 8)],
        inet6=[Inet6Address("::1", 128), Inet6Address("fe80::1", 64, scopeid=1)],
        nd6=["PERFORMNUD", "AUTO_LINKLOCAL"],
        groups=["lo"],
    )


def add_hn(state: State, unit: int, old_kernel: bool = False) -> Interface:
    mac = mac_for(f"{state.hostname}-hn{unit}")
    interface = state.add_interface(
        Interface(
            name=f"hn{unit}",
            driver="hn",
            unit=unit,
            index=0,
            flags=["BROADCAST", "SIMPLEX", "MULTICAST"],
            ether=mac,
            hwaddr=mac,
            link="up",
            capabilities=HN_CAPABILITIES,
            nd6=["PERFORMNUD", "IFDISABLED", "AUTO_LINKLOCAL"],
            media="Ethernet autoselect (10Gbase-T <full-duplex>)",
        )
    )
    prefix = f"dev.hn.{unit}"
    state.sysctls[f"{prefix}.%desc"] = Sysctl("Hyper-V Network Interface")
    state.sysctls[f"{prefix}.%driver"] = Sysctl("hn")
    state.sysctls[f"{prefix}.%parent"] = Sysctl("vmbus0")
    if not old_kernel:
        state.sysctls[f"{prefix}.vf"] = Sysctl("", "string", "rd", "Virtual Function's name")
        state.sysctls[f"{prefix}.rxvf"] = Sysctl(
            "", "string", "rd", "activated Virtual Function's name"
        )
        state.sysctls[f"{prefix}.vf_xpnt_enabled"] = Sysctl(
            0, "int", "rd", "Transparent VF enabled"
        )
    return interface


def _base_sysctls(hostname: str, old_kernel: bool, release: Any) -> dict[str, Sysctl]:
    sysctls = {
        "kern.ostype": Sysctl("FreeBSD", "string", "rd", "Operating system type"),
        "kern.osrelease": Sysctl(
            str(release.osrelease), "string", "rd", "Operating system release"
        ),
        "kern.osrevision": Sysctl(199506, "int", "rd", "Operating system revision"),
        "kern.version": Sysctl(
            str(release.version_string) + "\n", "string", "rd", "Kernel version"
        ),
        "kern.osreldate": Sysctl(int(release.osreldate), "int", "rd", "Kernel release date"),
        "kern.hostname": Sysctl(hostname, "string", "rw", "Hostname"),
        "kern.securelevel": Sysctl(-1, "int", "rw", "Current secure level"),
        "kern.vm_guest": Sysctl("hv", "string", "rd", "Virtual machine guest type"),
        "kern.features.inet": Sysctl(1, "int", "rd", "Internet Protocol version 4"),
        "kern.features.inet6": Sysctl(1, "int", "rd", "Internet Protocol version 6"),
        "hw.machine": Sysctl("amd64", "string", "rd", "Machine class"),
        "hw.machine_arch": Sysctl("amd64", "string", "rd", "System architecture"),
        "hw.ncpu": Sysctl(2, "int", "rd", "Number of active CPUs"),
        "hw.physmem": Sysctl(4294967296, "ulong", "rd", "Amount of physical memory (in bytes)"),
        "hw.bus.devctl_queue": Sysctl(1000, "int", "rwtun", "devctl queue length"),
        "net.link.lagg.failover_rx_all": Sysctl(
            0, "int", "rw", "Accept input from any interface in a failover lagg"
        ),
        "net.inet6.ip6.accept_rtadv": Sysctl(
            0, "int", "rw", "Default value of per-interface flag for accepting ICMPv6 RA messages"
        ),
        # sys/netinet6/in6_proto.c: ip6_dad_count is 1; rc.d/netif sleeps that many
        # seconds (plus one) after configuring IPv6 interfaces.
        "net.inet6.ip6.dad_count": Sysctl(
            1, "int", "rw", "Number of ICMPv6 NS messages sent during duplicate address detection"
        ),
        # sys/kern/kern_jail.c sysctl_jail_jailed: 0 outside a jail (rc.subr's
        # ${name}_oomprotect and check_jail read it).
        "security.jail.jailed": Sysctl(0, "int", "rd", "Process in jail?"),
    }
    if not old_kernel:
        sysctls["hw.hn.vf_transparent"] = Sysctl(1, "int", "rdtun", "Transparent VF mod")
        sysctls["hw.hn.vflist"] = Sysctl("", "string", "rd", "VF list")
        sysctls["hw.hn.vf_xpnt_attwait"] = Sysctl(
            2, "int", "rwtun", "Extra wait for transparent VF attach routing; unit: seconds"
        )
    return sysctls


PRESETS: dict[str, list[dict[str, Any]]] = {
    "ufs": [
        {"fsid": [0, 0], "fstype": "ufs", "mountpoint": "/", "source": "/dev/gpt/rootfs"},
        {"fsid": [0, 0], "fstype": "devfs", "mountpoint": "/dev", "source": "devfs"},
        {"fsid": [0, 0], "fstype": "ufs", "mountpoint": "/mnt/resource", "source": "/dev/da1p1"},
    ],
    "zfs": [
        {"fsid": [0, 0], "fstype": "zfs", "mountpoint": "/", "source": "zroot/ROOT/default"},
        {"fsid": [0, 0], "fstype": "devfs", "mountpoint": "/dev", "source": "devfs"},
        {"fsid": [0, 0], "fstype": "zfs", "mountpoint": "/var/log", "source": "zroot/var/log"},
        {"fsid": [0, 0], "fstype": "zfs", "mountpoint": "/zroot", "source": "zroot"},
    ],
    "mixed": [
        {"fsid": [0, 0], "fstype": "ufs", "mountpoint": "/", "source": "/dev/gpt/rootfs"},
        {"fsid": [0, 0], "fstype": "devfs", "mountpoint": "/dev", "source": "devfs"},
        {"fsid": [0, 0], "fstype": "zfs", "mountpoint": "/data", "source": "tank/data"},
        {"fsid": [0, 0], "fstype": "tmpfs", "mountpoint": "/tmp", "source": "tmpfs"},
        {
            "fsid": [0, 0],
            "fstype": "ufs",
            "mountpoint": "/mnt/cdrom",
            "source": "/dev/cd0",
            "readonly": True,
        },
    ],
}


def read_loader_settings(boot_directory: Path) -> dict[str, str]:
    """``name=value`` settings of loader.conf then loader.conf.d/*.conf; later wins."""
    files = [boot_directory / "loader.conf"]
    conf_d = boot_directory / "loader.conf.d"
    # The directory is a guest's overlay layer, read from the host before the
    # guest runs: links the guest left there would lead to the host's files,
    # and a FIFO would never end, so only regular files are read, bounded.
    if conf_d.is_dir() and not conf_d.is_symlink():
        files.extend(sorted(conf_d.glob("*.conf")))
    settings: dict[str, str] = {}
    for path in files:
        try:
            handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(handle, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                continue
            text = stream.read(MAX_LOADER_BYTES).decode("utf-8", errors="replace")
        for line in text.splitlines():
            parsed = parse_loader_line(line)
            if parsed is not None:
                settings[parsed[0]] = parsed[1]
    return settings


def parse_loader_line(line: str) -> Optional[tuple[str, str]]:
    """One loader.conf line: ``name="value"  # comment``; None for blanks and junk."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    name, _, rest = stripped.partition("=")
    name = name.strip()
    rest = rest.strip()
    if not name or any(c.isspace() for c in name):
        return None
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            return None
        value = rest[1:end]
    else:
        value = rest.split("#", 1)[0].strip()
    return name, value


def _coerce(oid: Sysctl, value: str) -> Any:
    if oid.kind == "string":
        return value
    try:
        return int(value, 0)
    except ValueError:
        return oid.value
