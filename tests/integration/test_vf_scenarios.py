"""The VF scenarios, each on one guest from boot through attach, detach, re-attach and migration.

Each scenario is a variables set (an example from ``examples/``, or the role
defaults with one interface's settings).  Its guest gets what hvbsd renders
for it and boots as FreeBSD's rc would (netif, then devd reading the boot's
queued LINK_UP events); then the simulated Hyper-V host attaches a VF, detaches
it, attaches it again and migrates the guest to a host of another NIC family.
devd dispatches every event the kernel sends to the installed rules, and the
real scripts run in the guest.  After boot and after each step the test checks
the addresses, the nd6 options, the lagg (or its absence), where dhclient runs
and that every devd action exited 0; every message names the scenario and step.

The expected values are FreeBSD's, worked out from its sources (cited where
used), and from what hvbsd's scripts tell FreeBSD's ifconfig to do; they are
not read from the simulator, but for the DHCP lease: the address its DHCP
server handed out for the hn's MAC, which the lagg (same MAC) must get again.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from hvbsd.render import role_defaults
from hvbsd.sim.freebsd.rtsol import RECORD as SOLICITATIONS
from hvbsd.sim.hyperv_nic import GuestNics, migrate, vf_attach, vf_detach
from hvbsd.sim.kernel import Kernel, State
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LEASE = "<lease>"  # stands for the address the host's DHCP server leased to the hn's MAC
VF = re.compile(r"(mce|mlxen|mana)[0-9]+")

# sys/netinet6/nd6.c nd6_ifattach: a new non-loopback interface gets PERFORMNUD,
# IFDISABLED ("Set IPv6 disabled on all interfaces but loopback by default") and,
# with net.inet6.ip6.auto_linklocal=1 (the default), AUTO_LINKLOCAL; ACCEPT_RTADV
# (and IFDISABLED cleared) only with net.inet6.ip6.accept_rtadv=1, which is 0 by
# default and set by nothing in rc.
ND6_AT_ATTACH = frozenset({"PERFORMNUD", "IFDISABLED", "AUTO_LINKLOCAL"})


def nd6_configured_by_rc(ipv6: str) -> frozenset[str]:
    """An interface's nd6 options once rc's netif has configured it.

    libexec/rc/network.subr ifconfig_up: with an ifconfig_IF_ipv6 line it runs
    ``ifconfig IF inet6 -ifdisabled`` before the line's arguments; without one
    (and ipv6_activate_all_interfaces=NO, the default) IPv6 stays as
    nd6_ifattach left it.  ipv6_accept_rtadv_up then runs ``ifconfig IF inet6
    accept_rtadv up`` (and rtsol) when ipv6_autoconfif holds: accept_rtadv in
    ifconfig_IF_ipv6, which is what hvbsd writes for SLAAC.
    """
    flags = set(ND6_AT_ATTACH)
    if ipv6 in ("static", "slaac"):
        flags.discard("IFDISABLED")
    if ipv6 == "slaac":
        flags.add("ACCEPT_RTADV")
    return frozenset(flags)


def nd6_of_the_lagg_hvbsd_builds(ipv6: str) -> frozenset[str]:
    """The nd6 options of the lagg hyperv_vfup creates (templates/libexec/hvbsd.subr.j2).

    ``ifconfig LAGG create`` (nd6_ifattach: ND6_AT_ATTACH), then hvbsd_vfup's
    ``ifconfig LAGG inet6 no_dad``, hvbsd_configure_lagg's ``ifconfig LAGG inet6
    -ifdisabled`` (whatever the hn's IPv6 setting) and, for SLAAC, hvbsd_solicit's
    ``ifconfig LAGG inet6 accept_rtadv up``.
    """
    flags = (set(ND6_AT_ATTACH) - {"IFDISABLED"}) | {"NO_DAD"}
    if ipv6 == "slaac":
        flags.add("ACCEPT_RTADV")
    return frozenset(flags)


# A lagg port: hvbsd_vfup runs ``ifconfig HN inet6 -accept_rtadv``, network.subr's
# ipv6_down and ``ifconfig HN inet6 ifdisabled``; with a static lagg rc configured the
# hn with "up" alone.  Either way nd6_ifattach's options.
ND6_OF_A_PORT = ND6_AT_ATTACH


def lagg_variables(**interface: Any) -> dict[str, Any]:
    """The role defaults in lagg mode, with a short VF delay, for hn0 with `interface`."""
    variables = role_defaults()
    variables.update(
        hyperv_guest_mode="lagg",
        hyperv_guest_vf_delay=2,
        hyperv_guest_interfaces=[{"name": "hn0", **interface}],
    )
    return variables


def example(name: str, **changes: Any) -> dict[str, Any]:
    variables = yaml.safe_load((ROOT / "examples" / name).read_text())
    variables.update(changes)
    return variables


# The user's own aliases for hn0 in rc.conf, outside hvbsd's block; network.subr's
# ipv4_up / ipv6_up add them at boot (ifalias_af_common: ifconfig_IF_aliasN and
# ifconfig_IF_aliases; ifalias_expand_addr_inet expands the 20-21 range, "Forcibly
# set /32 for remaining aliases"; IPv6 aliases default to prefixlen 64).
ALIASES = (
    "ifconfig_hn0_alias0='inet 192.0.2.11/32'\n"
    "ifconfig_hn0_alias1='inet6 2001:db8::11 prefixlen 64'\n"
    "ifconfig_hn0_aliases='inet 192.0.2.20-21/32 inet6 2001:db8::20 prefixlen 64'\n"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    variables: dict[str, Any]
    inet: tuple[str, ...]  # the hn's IPv4 addresses at boot (LEASE: its DHCP lease)
    inet6: tuple[str, ...] = ()  # its global IPv6 addresses (no IPv6 router: none by SLAAC)
    hn: str = "hn0"  # the hn the host gives and takes VFs
    nics: int = 1
    rc_conf: str = ""  # the user's own rc.conf lines
    mtu: int = 1500
    settings: dict[str, Any] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        chosen = [i for i in self.variables["hyperv_guest_interfaces"] if i["name"] == self.hn]
        object.__setattr__(self, "settings", chosen[0])

    @property
    def lagg_mode(self) -> bool:
        return self.variables.get("hyperv_guest_mode", "transparent") == "lagg"

    @property
    def static_lagg(self) -> bool:
        return self.lagg_mode and bool(self.variables.get("hyperv_guest_static_lagg", False))

    @property
    def lagg(self) -> Optional[str]:
        if not self.lagg_mode:
            return None
        return str(self.settings.get("lagg", "lagg" + self.hn.lstrip("hn")))

    @property
    def dhcp(self) -> bool:
        return self.settings.get("ipv4", "dhcp") in ("dhcp", "syncdhcp")

    @property
    def ipv6(self) -> str:
        return str(self.settings.get("ipv6", "none"))


SCENARIOS = [
    Scenario("dhcp", lagg_variables(ipv4="dhcp"), inet=(LEASE,)),
    Scenario("syncdhcp", example("azure-lagg.yml", hyperv_guest_vf_delay=2), inet=(LEASE,)),
    Scenario("static-v4", lagg_variables(ipv4="static", ipv4_address="192.0.2.10",
                                         ipv4_prefix=24), inet=("192.0.2.10/24",)),
    Scenario("dual-stack", example("static-dual-stack.yml", hyperv_guest_vf_delay=2),
             inet=("192.0.2.10/24",), inet6=("2001:db8::10/64",)),
    Scenario("aliases",
             lagg_variables(ipv4="static", ipv4_address="192.0.2.10", ipv4_prefix=24,
                            ipv6="static", ipv6_address="2001:db8::10"),
             inet=("192.0.2.10/24", "192.0.2.11/32", "192.0.2.20/32", "192.0.2.21/32"),
             inet6=("2001:db8::10/64", "2001:db8::11/64", "2001:db8::20/64"),
             rc_conf=ALIASES),
    Scenario("slaac", lagg_variables(ipv4="syncdhcp", ipv6="slaac"), inet=(LEASE,)),
    # hn1 has its own hyperv_vfup.hn1, its own lagg (lagg7) and mtu 4000 on both.
    Scenario("per-interface", example("static-dual-stack.yml", hyperv_guest_vf_delay=2),
             inet=("198.51.100.10/25",), inet6=("2001:db8:1::10/64",), hn="hn1", nics=2,
             mtu=4000),
    Scenario("static-lagg",
             example("azure-lagg.yml", hyperv_guest_vf_delay=2, hyperv_guest_static_lagg=True),
             inet=(LEASE,)),
    Scenario("transparent", example("transparent.yml"), inet=(LEASE,)),
]


PARAMS = [pytest.param(s, id=s.name) for s in SCENARIOS]


# -- what the guest shows ------------------------------------------------------------------


def state(guest: Any) -> State:
    return Kernel(guest.kernel_dir).snapshot()


def inet(snapshot: State, name: str) -> list[str]:
    return sorted(f"{a.address}/{a.prefixlen}" for a in snapshot.interface(name).inet)


def global_inet6(snapshot: State, name: str) -> list[str]:
    return sorted(f"{a.address}/{a.prefixlen}" for a in snapshot.interface(name).inet6
                  if not a.address.startswith("fe80:"))


def every_inet6(snapshot: State, name: str) -> list[str]:
    return sorted(f"{a.address}/{a.prefixlen}" for a in snapshot.interface(name).inet6)


def has_link_local(snapshot: State, name: str) -> bool:
    return any(a.address.startswith("fe80:") for a in snapshot.interface(name).inet6)


def link_local_wanted(nd6: frozenset[str]) -> bool:
    """Whether an up interface with these nd6 options has a link-local address.

    sys/netinet6/in6_ifattach.c in6_ifattach (run by in6_if_up when the
    interface goes up, and by nd6.c nd6_ioctl on an IFDISABLED 1->0 change)
    assigns one only without IFDISABLED and with AUTO_LINKLOCAL.
    """
    return "IFDISABLED" not in nd6 and "AUTO_LINKLOCAL" in nd6


def addresses_of(guest: Any, name: str, wanted: tuple[list[str], list[str]],
                 timeout: float = 10.0) -> tuple[list[str], list[str]]:
    """`name`'s IPv4 and global IPv6 addresses, once they are `wanted` or `timeout` has passed.

    A dhclient started with -b (hvbsd_start_dhclient, for a DHCP hn that is not
    SYNCDHCP) gets its lease after it has gone to the background, on FreeBSD too.
    """
    deadline = time.monotonic() + timeout
    while True:
        snapshot = state(guest)
        shown = (inet(snapshot, name), global_inet6(snapshot, name))
        if shown == wanted or time.monotonic() > deadline:
            return shown
        time.sleep(0.1)


def dhclients(guest: Any) -> list[str]:
    """The interfaces a dhclient runs for, from ps (dhclient's title is "dhclient: IF")."""
    shown = guest.exec(["ps", "-ax", "-o", "command="], text=True, check=True).stdout
    return sorted(line[len("dhclient: "):].strip() for line in shown.splitlines()
                  if line.startswith("dhclient: "))


def solicited(guest: Any) -> list[str]:
    record = Path(guest.kernel_dir) / SOLICITATIONS
    return record.read_text().split() if record.exists() else []


def lease(snapshot: State, hn: str) -> Optional[str]:
    """What the host's DHCP server leased to the hn's MAC (the lagg shares it), with its prefix."""
    interface = snapshot.interface(hn)
    granted = snapshot.network.leases.get((interface.hwaddr or interface.ether or "").lower())
    if granted is None:
        return None
    return f"{granted.address}/{ipaddress.IPv4Network(snapshot.network.subnet).prefixlen}"


def failed_actions(records: list[Any]) -> list[str]:
    """Every devd action that did not exit 0, or did not run, as 'event: command -> status'."""
    failed = []
    for record in records:
        line = getattr(record.event, "line", record.event)
        if len(record.statuses) != len(record.commands):
            failed.append(f"{line}: {list(record.commands)} ran {list(record.statuses)}")
        failed += [f"{line}: {command} -> {status}"
                   for command, status in zip(record.commands, record.statuses) if status != 0]
    return failed


# -- boot and the steps --------------------------------------------------------------------


def boot(guest: Any, scenario: Scenario) -> list[Any]:
    """What FreeBSD's rc does at boot once hvbsd's files are in place.

    install_rendered applied the loader tunables as the reboot would.  rc runs
    rc.d/netif, here for the hn interfaces of the variables and their static
    laggs (the lab's reboot does the same; lo0 is up already, and restarting it
    would only add its DAD wait), then rc.d/devd (its REQUIRE: netif), which
    reads the LINK_UP events the kernel queued meanwhile (Guest.boot_devd).
    Returns devd's dispatch records.
    """
    if scenario.rc_conf:
        guest.exec(["sh", "-c", "cat >> /etc/rc.conf"], input=scenario.rc_conf.encode(),
                   check=True)
    snapshot = state(guest)
    hns = [i["name"] for i in scenario.variables["hyperv_guest_interfaces"]
           if snapshot.find(i["name"]) is not None]
    laggs = [scenario.lagg] if scenario.static_lagg else []
    netif = guest.exec(["/etc/rc.d/netif", "start", *hns, *laggs], text=True, timeout=120)
    shown = netif.stdout + netif.stderr
    assert netif.returncode == 0, f"[{scenario.name}] boot: rc.d/netif: {netif.returncode} {shown}"
    return list(guest.boot_devd())


def expected_addresses(scenario: Scenario, leased: Optional[str]) -> tuple[list[str], list[str]]:
    v4 = sorted(leased if address == LEASE else address for address in scenario.inet)
    return v4, sorted(scenario.inet6)


def check_boot(guest: Any, scenario: Scenario, records: list[Any]) -> tuple[list[str], list[str]]:
    where = f"[{scenario.name}] boot"
    hn, lagg = scenario.hn, scenario.lagg
    snapshot = state(guest)
    assert failed_actions(records) == [], f"{where}: devd actions that failed"
    link_ups = [r.event.line for r in records]
    assert f"!system=IFNET subsystem={hn} type=LINK_UP" in link_ups, \
        f"{where}: devd read no LINK_UP of {hn} ({link_ups})"
    leased = lease(snapshot, hn) if scenario.dhcp else None
    if scenario.dhcp:
        assert leased is not None, f"{where}: the DHCP server leased nothing to {hn}'s MAC"
    addresses = expected_addresses(scenario, leased)
    # With a static lagg rc builds the lagg from rc.conf (cloned_interfaces) and the
    # addresses are the lagg's; hn0 is only "up".
    holder = lagg if scenario.static_lagg else hn
    assert lagg is None or scenario.static_lagg or snapshot.find(lagg) is None, \
        f"{where}: {lagg} exists before any VF"
    if scenario.static_lagg:
        assert lagg is not None
        static = snapshot.interface(lagg)
        assert (static.lagg_proto, static.lagg_ports) == ("failover", [hn]), \
            f"{where}: {lagg} is {static.lagg_proto} of {static.lagg_ports}, not failover of {hn}"
        assert (inet(snapshot, hn), every_inet6(snapshot, hn)) == ([], []), \
            f"{where}: {hn}, a port of {lagg}, has addresses"
        assert set(snapshot.interface(hn).nd6) == ND6_OF_A_PORT, \
            f"{where}: nd6 options of {hn}, a port of {lagg}"
    assert addresses_of(guest, holder, addresses) == addresses, f"{where}: addresses of {holder}"
    nd6 = nd6_configured_by_rc(scenario.ipv6)
    assert set(snapshot.interface(holder).nd6) == nd6, f"{where}: nd6 options of {holder}"
    assert has_link_local(snapshot, holder) == link_local_wanted(nd6), \
        f"{where}: link-local address of {holder}: {every_inet6(snapshot, holder)}"
    assert snapshot.interface(hn).mtu == scenario.mtu, f"{where}: mtu of {hn}"
    wanted = [holder] if scenario.dhcp else []
    assert dhclients(guest) == wanted, f"{where}: the interfaces dhclient runs for"
    # ipv6_accept_rtadv_up solicits a router (rtsol) on each SLAAC interface.
    assert solicited(guest) == ([holder] if scenario.ipv6 == "slaac" else []), \
        f"{where}: router solicitations"
    return addresses


def check_step(guest: Any, scenario: Scenario, step: str, result: Any, vf: Optional[str],
               addresses: tuple[list[str], list[str]], gone: set[str]) -> None:
    """The state after one step; `vf` is the VF the hn has now, `gone` every VF it had."""
    where = f"[{scenario.name}] {step}"
    hn, lagg = scenario.hn, scenario.lagg
    assert result.ok, f"{where}: the host could not play the step: {result.notes}"
    assert failed_actions(result.events) == [], f"{where}: devd actions that failed"
    snapshot = state(guest)
    events = [record.event for record in result.events]
    vf_up = [r for r in result.events
             if r.event == f"!system=HYPERV_NIC_VF subsystem={hn} type=VF_UP"]
    laggs = sorted(i.name for i in snapshot.interfaces if i.is_lagg)
    if lagg is None:
        # Transparent: hn(4) drives the VF and sends no HYPERV_NIC_VF event (if_hn.c
        # hn_attach registers hn_ifnet_event, whose hn_rxvf_change sends VF_UP and
        # VF_DOWN, only when !hn_xpnt_vf); nothing reaches hvbsd's scripts, no lagg.
        assert not [e for e in events if "HYPERV_NIC_VF" in e], f"{where}: VF events in {events}"
        assert laggs == [], f"{where}: a lagg appeared in transparent mode"
        holder = hn
    else:
        if vf is not None:
            assert len(vf_up) == 1 and vf_up[0].rule.startswith("/usr/local/etc/devd/hvbsd.conf:")\
                and vf_up[0].commands, f"{where}: VF_UP did not reach hyperv_vfup ({events})"
        assert laggs == [lagg], f"{where}: the laggs are {laggs}, not [{lagg}]"
        built = snapshot.interface(lagg)
        ports = [hn] if vf is None else [hn, vf]
        assert (built.lagg_proto, built.lagg_ports) == ("failover", ports), \
            f"{where}: {lagg} is {built.lagg_proto} of {built.lagg_ports}, not failover of {ports}"
        assert (inet(snapshot, hn), global_inet6(snapshot, hn)) == ([], []), \
            f"{where}: {hn}, a port of {lagg}, still has addresses"
        # if_lagg.c lagg_ioctl SIOCSLAGGPORT: a member with a link-local address loses
        # every inet6 address (in6_ifdetach), and nothing gives it one again.
        assert every_inet6(snapshot, hn) == [], \
            f"{where}: {hn}, a port of {lagg}, has IPv6 addresses {every_inet6(snapshot, hn)}"
        assert set(snapshot.interface(hn).nd6) == ND6_OF_A_PORT, \
            f"{where}: nd6 options of {hn}, a port of {lagg}"
        assert built.mtu == scenario.mtu, f"{where}: mtu of {lagg}"
        holder = lagg
    assert addresses_of(guest, holder, addresses) == addresses, f"{where}: addresses of {holder}"
    if lagg is None:
        nd6 = nd6_configured_by_rc(scenario.ipv6)
    elif scenario.static_lagg:
        nd6 = nd6_configured_by_rc(scenario.ipv6)  # hyperv_vfup only adds the VF to it
    else:
        nd6 = nd6_of_the_lagg_hvbsd_builds(scenario.ipv6)
    assert set(snapshot.interface(holder).nd6) == nd6, f"{where}: nd6 options of {holder}"
    assert has_link_local(snapshot, holder) == link_local_wanted(nd6), \
        f"{where}: link-local address of {holder}: {every_inet6(snapshot, holder)}"
    vfs = sorted(i.name for i in snapshot.interfaces if VF.fullmatch(i.name))
    assert vfs == ([] if vf is None else [vf]), f"{where}: the VFs are {vfs}"
    if vf is not None:
        # The VF attaches with IFDISABLED (nd6_ifattach) and nothing enables it.
        assert every_inet6(snapshot, vf) == [], f"{where}: IPv6 addresses on the VF {vf}"
    running = dhclients(guest)
    assert running == ([holder] if scenario.dhcp else []), \
        f"{where}: dhclient runs for {running}"
    leftover = [name for name in sorted(gone | set(vfs))
                if guest.path(f"/var/run/dhclient/dhclient.{name}.pid").exists()]
    assert leftover == [], f"{where}: dhclient pidfiles of VFs"
    if scenario.ipv6 == "slaac":
        # rc solicited on the hn at boot; hvbsd_solicit once on the lagg it built.
        wanted = [hn] if lagg is None else [hn, lagg]
        assert solicited(guest) == wanted, f"{where}: router solicitations"


@pytest.mark.parametrize("scenario", PARAMS)
def test_vf_scenario_from_boot_through_attach_detach_reattach_and_migration(sim_guests, scenario):
    guest = sim_guests(f"vf-{scenario.name}", nics=scenario.nics)
    install_rendered(guest, scenario.variables)
    addresses = check_boot(guest, scenario, boot(guest, scenario))
    nics = GuestNics(guest)
    hn = scenario.hn
    gone: set[str] = set()

    attached = vf_attach(nics, hn)
    check_step(guest, scenario, "attach", attached, "mce0", addresses, gone)

    detached = vf_detach(nics, hn)
    gone.add("mce0")
    check_step(guest, scenario, "detach", detached, None, addresses, gone)

    again = vf_attach(nics, hn)
    check_step(guest, scenario, "re-attach", again, "mce0", addresses, gone)

    moved = migrate(nics, hn)
    assert moved.scenario == f"migrate {hn} mce0 -> mana0", \
        f"[{scenario.name}] migrate: {moved.scenario}, not to the next NIC family (mana)"
    check_step(guest, scenario, "migrate", moved, "mana0", addresses, gone)

