"""Scenarios played through the simulated Hyper-V host: a backup, VF attach, detach,
re-attach and a live migration that changes NIC family (mce -> mana). After each
VF change the host's KVP view of hn's adapter (what Hyper-V Manager shows) must
list the lagg's addresses, where FreeBSD's stock daemon would list none.

The host is driven through the ``hyperv`` fixture, which works the same for a
simulated guest and a FreeBSD box.  The checks run in file order (backup,
attach, detach, re-attach, migrate), and each first brings the guest into the
state it needs, so any one of them can also run alone.
"""

from __future__ import annotations

import contextlib
import re

import pytest

from hvbsd.kvp.netinfo import parse_ifconfig, stock_lookup
from hvbsd.lab.hyperv import Unsupported
from hvbsd.render.engine import argument_specs
from hvbsd.sim.hyperv_nic import MIGRATES_TO  # the next NIC family: mce -> mana, ...

# Tier 3: only where a simulated Hyper-V host is there (conftest's simulated_host).
pytestmark = [pytest.mark.hvbsd_scenarios, pytest.mark.usefixtures("live", "simulated_host")]

DEFAULT_VF_DRIVERS = tuple(argument_specs()["hyperv_guest"]["hyperv_guest_vf_drivers"]["default"])


def wants_vss_daemon(variables: dict) -> bool:
    return bool(variables.get("hyperv_vss_enable", True)) and \
        variables.get("hyperv_guest_vss_daemon", "hvbsd") == "hvbsd"


# -- backup ------------------------------------------------------------------------------


def test_backup_succeeds_and_blocks_writes_while_frozen(host, hyperv, hvbsd_variables):
    if not wants_vss_daemon(hvbsd_variables):
        pytest.skip("this configuration does not run hvbsd_vssd")
    try:
        result = hyperv.backup()
    except Unsupported as reason:
        pytest.skip(str(reason))
    steps = {step["step"]: step.get("status") for step in result["steps"]}
    assert result["consistent"], f"the host saw {steps}"
    assert steps.get("check") == steps.get("freeze") == steps.get("thaw") == "HV_S_OK", steps
    writes = result["writes"]
    assert writes["blocked_during_snapshot"], f"a write went through while frozen: {writes}"
    assert writes["flowed_after_thaw"], f"the blocked write did not complete after THAW: {writes}"
    assert result["frozen_after"] == [], f"still frozen after THAW: {result['frozen_after']}"
    status = host.run("/usr/local/sbin/hvbsd_vssd --status")
    assert status.rc == 0 and "thawed" in status.stdout, status.stdout


# -- VF hot-plug ---------------------------------------------------------------------------


class Lagg:
    """The guest's view of the first hn interface and its lagg (ifconfig, as on FreeBSD)."""

    def __init__(self, host, variables: dict) -> None:
        if variables.get("hyperv_guest_mode", "transparent") != "lagg":
            pytest.skip("VF failover lagg checks need hyperv_guest_mode: lagg")
        interfaces = variables.get("hyperv_guest_interfaces") or []
        if not interfaces:
            pytest.skip("no hyperv_guest_interfaces to play VF hot-plug on")
        first = interfaces[0]
        self.host = host
        self.hn = first["name"]
        self.name = first.get("lagg") or "lagg" + re.sub(r"^\D+", "", self.hn)
        self.drivers = tuple(variables.get("hyperv_guest_vf_drivers") or DEFAULT_VF_DRIVERS)

    def interfaces(self) -> list[str]:
        return self.host.check_output("ifconfig -l").split()

    def vfs(self) -> list[str]:
        drivers = "|".join(map(re.escape, self.drivers))
        pattern = re.compile(rf"^({drivers})\d+$")
        return [name for name in self.interfaces() if pattern.match(name)]

    def exists(self) -> bool:
        return self.name in self.interfaces()

    def shown(self) -> str:
        return self.host.check_output("ifconfig %s", self.name)

    def proto(self) -> str:
        match = re.search(r"^\s*laggproto (\S+)", self.shown(), re.MULTILINE)
        return match.group(1) if match else ""

    def ports(self) -> list[tuple[str, str]]:
        return re.findall(r"^\s*laggport: (\S+) flags=\w+<([^>]*)>", self.shown(), re.MULTILINE)

    def ipv4(self, name: str) -> list[str]:
        if name not in self.interfaces():
            return []
        return re.findall(r"^\s*inet (\S+)", self.host.check_output("ifconfig %s", name),
                          re.MULTILINE)

    def address(self) -> list[str]:
        """Where the hn's IPv4 address is now: the lagg once built, the hn before."""
        return self.ipv4(self.name) if self.exists() else self.ipv4(self.hn)

    def ipv6(self, name: str) -> list[str]:
        """Global IPv6 addresses (no link-local fe80::)."""
        if name not in self.interfaces():
            return []
        found = re.findall(r"^\s*inet6 (\S+)", self.host.check_output("ifconfig %s", name),
                           re.MULTILINE)
        return [address for address in found if not address.lower().startswith("fe80:")]

    def mac(self) -> str:
        match = re.search(r"^\s*ether (\S+)", self.host.check_output("ifconfig %s", self.hn),
                          re.MULTILINE)
        assert match, f"{self.hn} has no MAC address"
        return match.group(1)

    def dhclients(self) -> list[str]:
        """The interfaces a dhclient runs for: its process title is ``dhclient: IF``."""
        found = self.host.run("pgrep -lf dhclient")
        return sorted(set(re.findall(r"\bdhclient: ([a-z][a-z0-9]*[0-9])\b", found.stdout)))

    def assert_no_dhclient_on_a_vf(self, *gone: str) -> None:
        """No dhclient on a lagg port: the stock IFNET LINK_UP rule stays shadowed."""
        vfs = {*self.vfs(), *gone}
        running = self.dhclients()
        assert [name for name in running if name in vfs] == [], (
            f"dhclient runs on a VF: {running} (VFs {sorted(vfs)})")


@pytest.fixture
def lagg(host, hvbsd_variables):
    return Lagg(host, hvbsd_variables)


def wants_kvp_daemon(variables: dict) -> bool:
    return variables.get("hyperv_guest_kvp", "hvbsd") == "hvbsd"


def assert_host_sees_the_laggs_addresses(hyperv, lagg: Lagg, variables: dict) -> None:
    """The host's GET_IP_INFO for hn's adapter (its MAC) lists the lagg's IPv4 (and
    global IPv6) through hvbsd_kvpd, and the stock daemon's lookup over the same
    ``ifconfig -a`` would list no IPv4: it takes the first interface with that
    MAC, hn, whose addresses moved to the lagg (hv_kvp_daemon.c kvp_mac_to_if_name,
    kvp_get_ip_info)."""
    if not wants_kvp_daemon(variables):
        return
    try:
        seen = hyperv.kvp_ip(lagg.mac())
    except Unsupported:
        return
    ipv4, ipv6 = lagg.ipv4(lagg.name), lagg.ipv6(lagg.name)
    assert ipv4, f"{lagg.name} has no IPv4 address"
    addresses = seen.get("addresses", [])
    for address in ipv4:
        assert address.split("/")[0] in addresses, f"the host sees {seen}, {lagg.name} has {ipv4}"
    for address in ipv6:
        assert address.split("/")[0].split("%")[0] in addresses, f"the host sees {seen}"
    _, stock = stock_lookup(parse_ifconfig(lagg.host.check_output("ifconfig -a")),
                            lagg.mac().upper())
    assert [a.address for a in stock if a.version == 4] == [], (
        f"the stock lookup would report IPv4 {stock}: the problem this daemon solves is gone")


def played(result: dict) -> dict:
    assert result["ok"], f"{result['scenario']}: {'; '.join(result['notes'])}"
    return result


def ensure_vf(hyperv, lagg: Lagg, attached: bool) -> None:
    if attached and not lagg.vfs():
        played(hyperv.vf_attach(lagg.hn))
    if not attached and lagg.vfs():
        played(hyperv.vf_detach(lagg.hn))


def test_vf_attach_builds_a_failover_lagg_hn_first_vf_active_address_moved(hyperv, lagg,
                                                                           hvbsd_variables):
    ensure_vf(hyperv, lagg, attached=False)
    address = lagg.address()
    assert address, f"{lagg.hn} has no IPv4 address before the VF comes"
    if wants_kvp_daemon(hvbsd_variables) and not lagg.exists():
        with contextlib.suppress(Unsupported):  # before any lagg: the hn's own address
            seen = hyperv.kvp_ip(lagg.mac())
            assert set(address) <= set(seen.get("addresses", [])), f"the host sees {seen}"

    played(hyperv.vf_attach(lagg.hn))

    vf = lagg.vfs()
    assert len(vf) == 1, f"VFs after attach: {vf}"
    assert lagg.exists(), f"{lagg.name} was not built"
    assert lagg.proto() == "failover"
    ports = lagg.ports()
    assert [name for name, _ in ports] == [lagg.hn, vf[0]], f"lagg ports {ports}"
    assert "ACTIVE" in ports[1][1], f"the VF is not the active port: {ports}"
    assert lagg.ipv4(lagg.name) == address, f"{lagg.name} has {lagg.ipv4(lagg.name)}"
    assert lagg.ipv4(lagg.hn) == [], f"{lagg.hn} kept {lagg.ipv4(lagg.hn)}"
    lagg.assert_no_dhclient_on_a_vf()
    assert_host_sees_the_laggs_addresses(hyperv, lagg, hvbsd_variables)


def test_vf_detach_keeps_the_address_on_the_lagg_via_hn(hyperv, lagg, hvbsd_variables):
    ensure_vf(hyperv, lagg, attached=True)
    address = lagg.ipv4(lagg.name)
    assert address

    old = lagg.vfs()

    played(hyperv.vf_detach(lagg.hn))

    assert lagg.vfs() == []
    assert [name for name, _ in lagg.ports()] == [lagg.hn]
    assert lagg.ipv4(lagg.name) == address, "the address left the lagg with the VF"
    lagg.assert_no_dhclient_on_a_vf(*old)
    assert_host_sees_the_laggs_addresses(hyperv, lagg, hvbsd_variables)


def test_vf_reattach_adds_the_vf_to_the_same_lagg(hyperv, lagg):
    if not lagg.exists():
        ensure_vf(hyperv, lagg, attached=True)  # a lagg built by a first VF
    ensure_vf(hyperv, lagg, attached=False)
    address = lagg.ipv4(lagg.name)
    laggs_before = [name for name in lagg.interfaces() if name.startswith("lagg")]

    played(hyperv.vf_attach(lagg.hn))

    vf = lagg.vfs()
    assert [name for name, _ in lagg.ports()] == [lagg.hn, *vf]
    assert len(vf) == 1
    assert [name for name in lagg.interfaces() if name.startswith("lagg")] == laggs_before
    assert lagg.ipv4(lagg.name) == address
    lagg.assert_no_dhclient_on_a_vf()


def test_migrate_lands_on_another_nic_family_mce_to_mana_and_keeps_the_address(
        hyperv, lagg, hvbsd_variables):
    ensure_vf(hyperv, lagg, attached=True)
    old = lagg.vfs()
    address = lagg.ipv4(lagg.name)

    played(hyperv.migrate(lagg.hn))

    new = lagg.vfs()
    assert len(new) == 1 and new != old, f"VFs before {old}, after {new}"
    old_family, new_family = (name.rstrip("0123456789") for name in (old[0], new[0]))
    assert new_family != old_family, "same VF driver"
    if old_family in MIGRATES_TO and MIGRATES_TO[old_family] in lagg.drivers:
        assert new_family == MIGRATES_TO[old_family], f"{old[0]} -> {new[0]}"
    ports = lagg.ports()
    assert [name for name, _ in ports] == [lagg.hn, new[0]], f"lagg ports {ports}"
    assert "ACTIVE" in ports[1][1], f"the new VF is not the active port: {ports}"
    assert old[0] not in lagg.interfaces(), f"{old[0]} is still there"
    assert lagg.ipv4(lagg.name) == address
    lagg.assert_no_dhclient_on_a_vf(*old)
    assert_host_sees_the_laggs_addresses(hyperv, lagg, hvbsd_variables)
