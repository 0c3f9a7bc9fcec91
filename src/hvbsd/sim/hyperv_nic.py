"""The simulated Hyper-V NICs: hn(4) + VF hot-plug, as the guest's devd sees it.

The scenarios (``vf attach``, ``vf detach``, ``migrate``, ``nic add``) change
the network the way the Hyper-V host and the guest's kernel would, and the
events devd receives are *derived from the kernel's state*, as the kernel
emits them, instead of being a hand-written list per scenario
(sys/net/if.c if_attach, sys/net/if_ethersubr.c ether_ifattach,
sys/dev/hyperv/netvsc/if_hn.c, sys/net/if_lagg.c):

- an interface appears: ``IFNET ATTACH`` (if_attach) then ``ETHERNET
  IFATTACH`` (end of ether_ifattach); it goes: ``IFNET DETACH`` (there is no
  ETHERNET IFDETACH);
- a non-transparent hn's datapath moves to its VF when the VF goes UP
  (hn_rxvf_change): hn reports ``LINK_DOWN`` and sends ``HYPERV_NIC_VF
  VF_UP``; when the VF goes down or away, ``VF_DOWN``; the hn's link comes
  back a moment later (hn_resume_mgmt), which is modelled as a separate step;
- any other link change: ``IFNET LINK_UP`` / ``LINK_DOWN`` (laggs after
  their ports).

Events are queued and dispatched one at a time through the guest's installed
devd rules; whatever the actions change (a lagg created, the VF brought up by
hyperv_vfattach's detached second run) is diffed again and its events are
queued behind, as a real devd reads its queue.  Every event is written as a
JSON line to ``<state>/events.log`` (the lab's timelines).

Two personalities share this code: ``GuestNics`` (a simulated guest on
Linux, hvbsd.sim.kernel) and ``hvbsd.sim.box.BoxNics`` (inside a FreeBSD box,
real interfaces).  Only the standard library and hvbsd.devd are used, so the
box can run it.
"""

from __future__ import annotations

import collections
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

QUOTING = ("quoted", "raw")
# The VF drivers Azure pairs with hn(4): mlx5en(4) (ConnectX-4/5), mlx4en(4)
# (ConnectX-3) and mana(4), the Microsoft Azure Network Adapter (sys/dev/mana,
# gdma_main.c's driver_t "mana"). hn(4) needs no list: if_hn.c hn_ismyvf takes any
# IFT_ETHER ifnet (not lagg or vlan) with the hn's MAC as its VF.
VF_DRIVERS = ("mce", "mlxen", "mana")
# A live migration lands on a host of another NIC family: the default new driver.
MIGRATES_TO = {"mce": "mana", "mana": "mlxen", "mlxen": "mce"}
# What a VF's ifnet looks like where it differs from mlx5en's (the kernel's default).
# mana(4), mana_en.c mana_probe_port: if_alloc_dev(IFT_ETHER), if_initname("mana",
# port index) (the simulator gives the first free unit, as for mce),
# BROADCAST|SIMPLEX|MULTICAST, ETHERMTU, capabilities TXCSUM TXCSUM_IPV6 RXCSUM
# RXCSUM_IPV6 TSO4 TSO6 LRO LINKSTATE (all enabled), media IFM_ETHER|IFM_AUTO;
# mana_ifmedia_status reports 100G_DR full-duplex once the port is up, and
# mana_up sends the link up (so no link before the VF is UP).
VF_PROFILES: dict[str, dict[str, Any]] = {
    "mana": {
        "capabilities": 0x680703,
        "media": "Ethernet autoselect (100GBase-DR <full-duplex>)",
    },
}
NON_ETHERNET = frozenset({"lo", "gif", "gre", "stf", "tun", "pflog", "pfsync", "enc", "wg"})
MAX_EVENTS_PER_STEP = 64  # a devd queue that keeps growing is a loop: stop and say so
POLL = 0.1
_IFNAME = re.compile(r"[a-z][a-z0-9]{0,13}[0-9]")


class NicError(Exception):
    """A scenario that cannot run as asked; ``exit_status`` 2 for bad input."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass(frozen=True)
class IfView:
    """One interface as the kernel would report it in devd events."""

    name: str
    kind: str  # "hn", "vf", "lagg", "loopback", "other"
    ethernet: bool
    up: bool  # IFF_UP
    link: str  # "up", "down", "unknown" (no link events)
    vf: str = ""  # hn: its VF ("" if none)
    rxvf: str = ""  # hn: the VF carrying its datapath (non-transparent, VF UP)
    ports: tuple[str, ...] = ()  # lagg: its ports, primary first


NetView = dict[str, IfView]


class Nics(Protocol):
    """What differs between the personalities; everything else is shared."""

    log_dir: Path
    label: str

    def view(self) -> NetView: ...
    def attach_vf(self, hn: str, vf: str) -> None: ...
    def detach_vf(self, hn: str) -> Optional[str]: ...
    def add_nic(self) -> str: ...
    def hn_link(self, hn: str) -> str: ...
    def set_hn_link(self, hn: str, link: str) -> None: ...
    def raise_vf(self, vf: str) -> None: ...
    def transparent(self) -> bool: ...
    def xpnt_attwait(self) -> float: ...
    def vf_delay(self) -> int: ...
    def dispatch(self, line: str, quoting: str) -> Any: ...


def valid_ifname(name: str) -> bool:
    return bool(_IFNAME.fullmatch(name))


def notify(system: str, subsystem: str, kind: str) -> str:
    return f"!system={system} subsystem={subsystem} type={kind}"


def derive(before: NetView, after: NetView) -> list[str]:
    """The devctl lines the kernel sends for the change from ``before`` to ``after``."""
    events: list[str] = []
    link_done: set[str] = set()
    for name, now in after.items():
        if now.kind != "hn":
            continue
        was = before.get(name)
        old_rxvf = was.rxvf if was else ""
        if now.rxvf and not old_rxvf:
            # hn_rxvf_change(true): the hn's link goes down, then VF_UP.
            if was is not None and was.link == "up" and now.link != "up":
                events.append(notify("IFNET", name, "LINK_DOWN"))
            link_done.add(name)
            events.append(notify("HYPERV_NIC_VF", name, "VF_UP"))
        elif old_rxvf and not now.rxvf:
            events.append(notify("HYPERV_NIC_VF", name, "VF_DOWN"))
    for name in before:
        if name not in after:
            events.append(notify("IFNET", name, "DETACH"))
    for name, now in after.items():
        if name not in before:
            events.append(notify("IFNET", name, "ATTACH"))
            if now.ethernet:
                events.append(notify("ETHERNET", name, "IFATTACH"))
    for now in sorted(after.values(), key=lambda v: v.kind == "lagg"):
        if now.name in link_done or now.link == "unknown":
            continue
        was = before.get(now.name)
        old_link = was.link if was is not None else "down"
        if now.link != old_link:
            events.append(notify("IFNET", now.name, "LINK_UP" if now.link == "up" else "LINK_DOWN"))
    return events


@dataclass
class EventRecord:
    step: str
    event: str
    offset: float  # seconds since the scenario began
    rule: Optional[str]
    commands: list[str]
    statuses: list[int]
    durations: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "event": self.event,
            "t": round(self.offset, 3),
            "rule": self.rule,
            "commands": self.commands,
            "statuses": self.statuses,
            "durations": [round(d, 3) for d in self.durations],
        }


@dataclass
class Result:
    target: str
    scenario: str
    quoting: str
    ok: bool = True
    notes: list[str] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    interfaces: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "scenario": self.scenario,
            "quoting": self.quoting,
            "ok": self.ok,
            "notes": self.notes,
            "events": [e.as_dict() for e in self.events],
            "interfaces": self.interfaces,
        }

    def readable(self) -> str:
        lines = [f"{self.target}: {self.scenario} ({self.quoting} devd): "
                 f"{'done' if self.ok else 'INCOMPLETE'}"]
        for record in self.events:
            lines.append(f"  {record.offset:7.2f}s [{record.step}] {record.event}")
            if record.rule is None:
                lines.append("           no rule")
            elif not record.commands:
                lines.append(f"           {record.rule}: no action")
            for command, status in zip(record.commands, record.statuses):
                lines.append(f"           {record.rule}: {command} -> {status}")
        lines.extend(f"  note: {note}" for note in self.notes)
        for name, summary in self.interfaces.items():
            lines.append(f"  {name}: {summary}")
        return "\n".join(lines)


class Player:
    """Plays host changes and dispatches what the kernel sends, one event at a time."""

    def __init__(
        self,
        nics: Nics,
        scenario: str,
        quoting: str = "quoted",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if quoting not in QUOTING:
            raise NicError(f"quoting {quoting!r}: must be one of {', '.join(QUOTING)}", 2)
        self.nics = nics
        self.quoting = quoting
        self.clock = clock
        self.began = clock()
        self.result = Result(nics.label, scenario, quoting)
        self.observed = nics.view()
        self.queue: collections.deque[str] = collections.deque()
        self.step = "start"

    def _collect(self) -> None:
        now = self.nics.view()
        events = derive(self.observed, now)
        keep = getattr(self.nics, "simulated", None)
        if keep is not None:
            # Inside a FreeBSD box the real kernel announces real interfaces itself.
            events = [line for line in events if keep(line, self.observed, now)]
        self.queue.extend(events)
        self.observed = now

    def settle(self, step: Optional[str] = None) -> None:
        """Queue what changed since last looked, and dispatch until the queue is empty."""
        if step is not None:
            self.step = step
        self._collect()
        handled = 0
        while self.queue:
            if handled >= MAX_EVENTS_PER_STEP:
                self.result.ok = False
                self.result.notes.append(
                    f"{self.step}: more than {MAX_EVENTS_PER_STEP} events, stopped "
                    f"({len(self.queue)} left): the actions keep changing the network"
                )
                self.queue.clear()
                return
            line = self.queue.popleft()
            self._dispatch(line)
            handled += 1
            self._collect()

    def _dispatch(self, line: str) -> None:
        offset = self.clock() - self.began
        record = self.nics.dispatch(line, self.quoting)
        rule = None
        if getattr(record, "rule", None) is not None:
            rule = f"{record.rule.file}:{record.rule.line}"
        entry = EventRecord(
            self.step, line, offset, rule, list(record.commands), list(record.statuses),
            list(record.durations),
        )
        self.result.events.append(entry)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        payload = {"time": stamp, "target": self.nics.label, "scenario": self.result.scenario,
                   "quoting": self.quoting, **entry.as_dict()}
        self.nics.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.nics.log_dir / "events.log", "a", encoding="utf-8") as log:
            log.write(json.dumps(payload, sort_keys=True) + "\n")

    def wait_for(self, predicate: Callable[[NetView], bool], timeout: float) -> bool:
        """Keep dispatching what happens until ``predicate`` holds or ``timeout`` passes."""
        deadline = self.clock() + timeout
        while True:
            self.settle()
            if predicate(self.observed):
                return True
            if self.clock() >= deadline:
                return False
            time.sleep(POLL)

    def finish(self) -> Result:
        self.settle()
        for name, view in self.observed.items():
            if view.kind == "loopback":
                continue
            summary = f"{view.kind}, {'UP' if view.up else 'down'}, link {view.link}"
            if view.vf:
                summary += f", VF {view.vf}" + (" (datapath)" if view.rxvf else "")
            if view.ports:
                summary += f", ports {' '.join(view.ports)}"
            self.result.interfaces[name] = summary
        return self.result


# -- scenarios ---------------------------------------------------------------------------


def _require_hn(nics: Nics, hn: str) -> IfView:
    if not valid_ifname(hn):
        raise NicError(f"interface {hn!r}: not an interface name", 2)
    view = nics.view().get(hn)
    if view is None or view.kind != "hn":
        raise NicError(f"{nics.label}: {hn} is not an hn(4) interface", 2)
    return view


def next_vf_name(view: NetView, driver: str) -> str:
    unit = 0
    while f"{driver}{unit}" in view:
        unit += 1
    return f"{driver}{unit}"


def _attach(player: Player, hn: str, vf: str, wait: Optional[float]) -> None:
    nics = player.nics
    nics.attach_vf(hn, vf)
    player.settle("attach")
    if nics.transparent():
        # hn(4) takes the VF over itself after hw.hn.vf_xpnt_attwait and brings it up.
        time.sleep(nics.xpnt_attwait())
        nics.raise_vf(vf)
        player.settle("transparent")
        player.result.notes.append(f"transparent mode: hn drives {vf}, no VF_UP")
        return
    timeout = float(wait) if wait is not None else nics.vf_delay() + 5.0
    player.step = "vf-up"
    if player.wait_for(lambda v: vf in v and v[vf].up, timeout):
        player.settle()
        return
    player.result.ok = False
    player.result.notes.append(
        f"{vf} was not brought up within {timeout:g}s, so hn sent no VF_UP "
        "(nothing ran hyperv_vfattach's delayed 'ifconfig up')"
    )


def _detach(player: Player, hn: str) -> Optional[str]:
    nics = player.nics
    own_link = nics.hn_link(hn)
    datapath_on_vf = bool(player.observed[hn].rxvf)
    if datapath_on_vf:
        # The hn keeps reporting link down until its management task has
        # asked the host again (hn_resume_mgmt): the lagg sees both ports gone.
        nics.set_hn_link(hn, "down")
    gone = nics.detach_vf(hn)
    player.settle("detach")
    if datapath_on_vf:
        nics.set_hn_link(hn, own_link)
        player.settle("hn-link")
    return gone


def vf_attach(nics: Nics, hn: str, vf: Optional[str] = None, *, quoting: str = "quoted",
              wait: Optional[float] = None) -> Result:
    current = _require_hn(nics, hn)
    if current.vf:
        raise NicError(f"{nics.label}: {hn} already has VF {current.vf}; detach it first", 2)
    if vf is None:
        vf = next_vf_name(nics.view(), VF_DRIVERS[0])
    if not valid_ifname(vf):
        raise NicError(f"VF name {vf!r}: must be a driver name and a unit (mce0)", 2)
    if vf in nics.view():
        raise NicError(f"{nics.label}: an interface {vf} exists already", 2)
    player = Player(nics, f"vf attach {hn} {vf}", quoting)
    _attach(player, hn, vf, wait)
    return player.finish()


def vf_detach(nics: Nics, hn: str, *, quoting: str = "quoted") -> Result:
    current = _require_hn(nics, hn)
    if not current.vf:
        raise NicError(f"{nics.label}: {hn} has no VF to detach", 2)
    player = Player(nics, f"vf detach {hn}", quoting)
    _detach(player, hn)
    return player.finish()


def migrate(nics: Nics, hn: str, vf: Optional[str] = None, *, quoting: str = "quoted",
            wait: Optional[float] = None) -> Result:
    """Live migration to a host with other NICs: the VF goes, another driver's VF comes."""
    current = _require_hn(nics, hn)
    if vf is not None and not valid_ifname(vf):
        raise NicError(f"VF name {vf!r}: must be a driver name and a unit (mlxen0)", 2)
    old = current.vf
    if vf is not None and vf != old and vf in nics.view():
        # Refused before anything changes: the old VF stays.
        raise NicError(f"{nics.label}: an interface {vf} exists already", 2)
    player = Player(nics, f"migrate {hn}", quoting)
    if old:
        _detach(player, hn)
    if vf is None:
        driver = MIGRATES_TO.get(old.rstrip("0123456789"), VF_DRIVERS[0]) if old else \
            VF_DRIVERS[0]
        vf = next_vf_name(player.observed, driver)
    if vf in player.observed:
        raise NicError(f"{nics.label}: an interface {vf} exists already", 2)
    player.result.scenario = f"migrate {hn} {old or '-'} -> {vf}"
    _attach(player, hn, vf, wait)
    return player.finish()


def nic_add(nics: Nics, *, quoting: str = "quoted") -> Result:
    player = Player(nics, "nic add", quoting)
    name = nics.add_nic()
    player.result.scenario = f"nic add {name}"
    player.settle("nic-add")
    return player.finish()


def emit(nics: Nics, lines: list[str], *, quoting: str = "quoted", step: str = "event") -> Result:
    """Dispatch given devctl lines (e.g. a forged or hostile event), then what follows."""
    player = Player(nics, "events", quoting)
    player.step = step
    player.queue.extend(lines)
    player.settle()
    return player.finish()


# -- the Linux personality: a simulated guest ----------------------------------------------

BOOT_NETIF = (
    ". /etc/rc.subr; load_rc_config netif; "
    '[ -z "$cloned_interfaces" ] || /etc/rc.d/netif faststart'
)


class GuestNics:
    """The NICs of a running simulated guest (``hvbsd.sim.guest.Guest``)."""

    def __init__(self, guest: Any) -> None:
        from hvbsd.sim.kernel import Kernel

        guest.require_running()
        self.guest = guest
        self.kernel = Kernel(guest.kernel_dir)
        self.log_dir: Path = guest.state_dir
        self.label: str = guest.name

    def view(self) -> NetView:
        return view_of_state(self.kernel.snapshot())

    def attach_vf(self, hn: str, vf: str) -> None:
        self.kernel.attach_vf(hn, vf)
        profile = VF_PROFILES.get(vf.rstrip("0123456789"))
        if profile:
            with self.kernel.transaction() as state:
                interface = state.interface(vf)
                interface.capabilities = profile["capabilities"]
                interface.media = profile["media"]

    def detach_vf(self, hn: str) -> Optional[str]:
        return self.kernel.detach_vf(hn)

    def add_nic(self) -> str:
        return self.kernel.add_nic().name

    def hn_link(self, hn: str) -> str:
        return self.kernel.snapshot().interface(hn).link

    def set_hn_link(self, hn: str, link: str) -> None:
        self.kernel.set_link(hn, link)

    def raise_vf(self, vf: str) -> None:
        with self.kernel.transaction() as state:
            interface = state.interface(vf)
            if not interface.is_up:
                interface.flags.append("UP")

    def _sysctl(self, name: str, default: Any) -> Any:
        oid = self.kernel.snapshot().sysctls.get(name)
        return default if oid is None else oid.value

    def transparent(self) -> bool:
        return self._sysctl("hw.hn.vf_transparent", 0) not in (0, "0")

    def xpnt_attwait(self) -> float:
        return max(2.0, float(self._sysctl("hw.hn.vf_xpnt_attwait", 2)))

    def vf_delay(self) -> int:
        shown = self.guest.exec(
            ["/bin/sh", "-c", '. /etc/rc.subr; load_rc_config netif; echo "$hyperv_vf_delay"'],
            text=True, timeout=30,
        ).stdout.strip()
        return max(2, int(shown)) if shown.isdigit() else 2

    def dispatch(self, line: str, quoting: str) -> Any:
        from hvbsd.sim.devd_guest import dispatch

        return dispatch(self.guest, line, quoting=quoting)


def view_of_state(state: Any) -> NetView:
    """IfView of every interface of a ``hvbsd.sim.kernel.State``."""
    vfs = {i.vf for i in state.interfaces if i.driver == "hn" and i.vf}
    view: NetView = {}
    for interface in state.interfaces:
        rxvf = ""
        if "LOOPBACK" in interface.flags or interface.driver == "lo":
            kind, link = "loopback", "unknown"
        elif interface.driver == "hn":
            kind, link = "hn", state.link_of(interface)
            if state.hn_datapath_on_vf(interface):
                rxvf = interface.vf or ""
        elif interface.is_lagg:
            kind, link = "lagg", state.link_of(interface)
        else:
            kind = "vf" if interface.name in vfs else "other"
            # A driver reports link only once the interface is opened (UP).
            link = state.link_of(interface) if interface.is_up else "down"
        view[interface.name] = IfView(
            name=interface.name,
            kind=kind,
            ethernet=interface.driver not in NON_ETHERNET,
            up=interface.is_up,
            link=link,
            vf=(interface.vf or "") if interface.driver == "hn" else "",
            rxvf=rxvf,
            ports=tuple(interface.lagg_ports),
        )
    return view


def boot_network(guest: Any) -> None:
    """rc's netif at boot, for a guest whose rc.conf clones interfaces (a static lagg).

    Guests without cloned_interfaces keep booting without rc (their tests
    configure hn themselves); output goes to ``<state>/boot.log``.
    """
    result = guest.exec(["/bin/sh", "-c", BOOT_NETIF], text=True, timeout=120)
    with open(guest.state_dir / "boot.log", "a", encoding="utf-8") as log:
        log.write(f"netif at boot: exit {result.returncode}\n{result.stdout}{result.stderr}")
