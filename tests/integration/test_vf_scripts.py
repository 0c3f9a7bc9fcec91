"""The rendered VF scripts, run by real /bin/sh inside a simulated FreeBSD guest.

Each test renders a configuration with `hvbsd.render`, installs it in a guest,
plays what the Hyper-V host and devd would do (a VF appears, the script runs)
and reads the guest's kernel state and syslog afterwards.
"""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.sim.freebsd.rtsol import RECORD as SOLICITATIONS
from hvbsd.sim.hyperv_nic import GuestNics, emit
from hvbsd.sim.kernel import Kernel, State
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LIBEXEC = "/usr/local/libexec/hvbsd"


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / name).read_text())



def sh(guest: Any, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = guest.exec(["sh", "-c", command], text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result


def kernel(guest: Any) -> Kernel:
    return Kernel(guest.kernel_dir)


def state(guest: Any) -> State:
    return kernel(guest).snapshot()


def inet(guest: Any, name: str) -> list[str]:
    return [f"{a.address}/{a.prefixlen}" for a in state(guest).interface(name).inet]


def global_inet6(guest: Any, name: str) -> list[str]:
    return [
        f"{a.address}/{a.prefixlen}"
        for a in state(guest).interface(name).inet6
        if not a.address.startswith("fe80:")
    ]


def syslog(guest: Any) -> str:
    messages = guest.path("/var/log/messages")
    return messages.read_text() if messages.exists() else ""


def attach_and_raise_vf(guest: Any, hn: str = "hn0", vf: str = "mce0") -> None:
    """The host attaches a VF; hyperv_vfattach would bring it up after the delay."""
    kernel(guest).attach_vf(hn, vf)
    sh(guest, f"ifconfig {vf} up")


def vfup(guest: Any, hn: str = "hn0", check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(guest, f"{LIBEXEC}/hyperv_vfup {hn}", check=check)


def interfaces_view(guest: Any) -> list[tuple[Any, ...]]:
    """What a repeated or refused event must not change."""
    snapshot = state(guest)
    return [
        (
            i.name,
            tuple(i.flags),
            tuple((a.address, a.prefixlen) for a in i.inet),
            tuple(a.address for a in i.inet6),
            tuple(i.nd6),
            i.lagg_proto,
            tuple(i.lagg_ports),
        )
        for i in snapshot.interfaces
    ]


def test_vfup_with_dhcp_builds_failover_lagg_with_hn_first_and_moves_the_lease(sim_guests):
    guest = sim_guests("dhcp")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "dhclient hn0")
    address = inet(guest, "hn0")
    assert address, "dhclient gave hn0 no lease"
    attach_and_raise_vf(guest)

    vfup(guest)

    snapshot = state(guest)
    lagg = snapshot.interface("lagg0")
    assert lagg.lagg_proto == "failover"
    assert lagg.lagg_ports == ["hn0", "mce0"]
    assert inet(guest, "lagg0") == address, "the lagg has the hn's MAC, so the same lease"
    assert inet(guest, "hn0") == []
    shown = sh(guest, "ifconfig lagg0").stdout
    assert "\tlaggport: hn0 flags=1<MASTER>" in shown
    assert "\tlaggport: mce0 flags=4<ACTIVE>" in shown
    assert sh(guest, "pgrep -F /var/run/dhclient/dhclient.lagg0.pid", check=False).returncode == 0
    assert not guest.path("/var/run/dhclient/dhclient.hn0.pid").exists()
    assert "hvbsd: hyperv_vfup hn0: lagg0 built from hn0 and mce0" in syslog(guest)


def test_vfup_with_static_dual_stack_moves_ipv4_and_ipv6_to_the_lagg(sim_guests):
    guest = sim_guests("static")
    install_rendered(guest, example("static-dual-stack.yml"))
    sh(guest, "ifconfig hn0 inet 192.0.2.10/24 && ifconfig hn0 inet6 -ifdisabled")
    sh(guest, "ifconfig hn0 inet6 2001:db8::10 prefixlen 64")
    attach_and_raise_vf(guest)

    vfup(guest)

    assert inet(guest, "lagg0") == ["192.0.2.10/24"]
    assert global_inet6(guest, "lagg0") == ["2001:db8::10/64"]
    assert inet(guest, "hn0") == []
    assert global_inet6(guest, "hn0") == []
    hn0 = state(guest).interface("hn0")
    assert "IFDISABLED" in hn0.nd6, "IPv6 stays off on the lagg's port"
    assert "NO_DAD" in state(guest).interface("lagg0").nd6


def test_per_interface_script_runs_instead_with_its_own_lagg_and_options(sim_guests):
    guest = sim_guests("own", nics=2)
    install_rendered(guest, example("static-dual-stack.yml"))
    assert guest.path(f"{LIBEXEC}/hyperv_vfup.hn1").exists()
    assert not guest.path(f"{LIBEXEC}/hyperv_vfup.hn0").exists()
    sh(guest, "ifconfig hn1 inet 198.51.100.10/25")
    attach_and_raise_vf(guest, "hn1", "mce1")

    vfup(guest, "hn1")

    snapshot = state(guest)
    assert snapshot.find("lagg1") is None
    lagg = snapshot.interface("lagg7")
    assert lagg.lagg_ports == ["hn1", "mce1"]
    assert lagg.mtu == 4000
    assert inet(guest, "lagg7") == ["198.51.100.10/25"]


def test_vf_gone_before_the_script_runs_is_logged_and_left(sim_guests):
    guest = sim_guests("race")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "dhclient hn0")
    attach_and_raise_vf(guest)
    kernel(guest).detach_vf("hn0")
    before = interfaces_view(guest)

    vfup(guest)

    assert interfaces_view(guest) == before
    assert state(guest).find("lagg0") is None
    assert "VF was detached before it could be added" in syslog(guest)


def test_returning_vf_is_only_re_added_to_the_existing_lagg(sim_guests):
    guest = sim_guests("readd")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "dhclient hn0")
    address = inet(guest, "hn0")
    attach_and_raise_vf(guest)
    vfup(guest)
    kernel(guest).detach_vf("hn0")
    assert state(guest).interface("lagg0").lagg_ports == ["hn0"]
    assert inet(guest, "lagg0") == address, "the address stays on the lagg while the VF is away"

    attach_and_raise_vf(guest, "hn0", "mce1")  # after a migration: another VF name
    vfup(guest)

    snapshot = state(guest)
    assert snapshot.interface("lagg0").lagg_ports == ["hn0", "mce1"]
    assert [i.name for i in snapshot.interfaces if i.is_lagg] == ["lagg0"]
    assert inet(guest, "lagg0") == address
    assert "mce1 added to lagg0 again" in syslog(guest)


def test_repeated_vf_up_changes_nothing(sim_guests):
    guest = sim_guests("repeat")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "dhclient hn0")
    attach_and_raise_vf(guest)
    vfup(guest)
    before = interfaces_view(guest)

    vfup(guest)
    vfup(guest)

    assert interfaces_view(guest) == before
    assert syslog(guest).count("mce0 is already in lagg0") == 2


def test_lagg_port_membership_is_by_exact_name(sim_guests):
    guest = sim_guests("exact", nics=1)
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "dhclient hn0")
    attach_and_raise_vf(guest, "hn0", "mce10")
    vfup(guest)
    kernel(guest).detach_vf("hn0")

    attach_and_raise_vf(guest, "hn0", "mce1")  # a substring of the old port's name
    vfup(guest)

    assert state(guest).interface("lagg0").lagg_ports == ["hn0", "mce1"]


def test_foreign_lagg_of_the_same_name_is_never_touched(sim_guests):
    guest = sim_guests("foreign")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "ifconfig epair create >/dev/null && ifconfig lagg0 create >/dev/null")
    sh(guest, "ifconfig lagg0 laggproto failover laggport epair0a 10.9.9.9/24")
    sh(guest, "dhclient hn0")
    attach_and_raise_vf(guest)
    before = interfaces_view(guest)

    result = vfup(guest, check=False)

    assert result.returncode != 0
    assert interfaces_view(guest) == before
    assert "lagg0 exists without hn0 as a port; left alone" in syslog(guest)


def test_old_kernel_without_hn_vf_sysctls_is_a_logged_no_op(sim_guests):
    guest = sim_guests("old")
    install_rendered(guest, example("azure-lagg.yml"))
    with kernel(guest).transaction() as snapshot:
        for name in ("dev.hn.0.vf", "dev.hn.0.rxvf", "hw.hn.vflist", "hw.hn.vf_transparent"):
            snapshot.sysctls.pop(name, None)
    sh(guest, "dhclient hn0")
    before = interfaces_view(guest)

    vfup(guest)
    sh(guest, f"{LIBEXEC}/hyperv_vfattach hn0 0")

    assert interfaces_view(guest) == before
    log = syslog(guest)
    assert "kernel has no dev.hn.0.vf, nothing to do" in log
    assert "kernel has no hw.hn.vflist, nothing to do" in log


def test_transparent_kernel_makes_the_scripts_no_ops(sim_guests):
    # Deployed for lagg mode, but the loader tunable has not taken effect yet
    # (no reboot): hw.hn.vf_transparent is still 1.
    guest = sim_guests("xpnt")
    install_rendered(guest, example("azure-lagg.yml"), boot=False)
    sh(guest, "dhclient hn0")
    attach_and_raise_vf(guest)
    before = interfaces_view(guest)

    vfup(guest)
    sh(guest, f"{LIBEXEC}/hyperv_vfattach mce0 0")

    assert interfaces_view(guest) == before
    assert "hw.hn.vf_transparent is set, hn drives the VF" in syslog(guest)


def test_not_a_hyper_v_guest_is_a_no_op(sim_guests):
    guest = sim_guests("kvm")
    install_rendered(guest, example("azure-lagg.yml"))
    with kernel(guest).transaction() as snapshot:
        snapshot.sysctls["kern.vm_guest"].value = "kvm"
    attach_and_raise_vf(guest)
    before = interfaces_view(guest)

    vfup(guest)

    assert interfaces_view(guest) == before
    assert "not a Hyper-V guest" in syslog(guest)


@pytest.mark.parametrize("hostile", ["hn0;reboot", "../x", "hn" + "0" * 38, "hn0 hn1", "$(reboot)"])
@pytest.mark.parametrize("script", ["hyperv_vfup", "hyperv_vfattach"])
def test_hostile_interface_names_are_refused_with_nothing_changed(sim_guests, script, hostile):
    guest = sim_guests("hostile")
    install_rendered(guest, example("azure-lagg.yml"))
    # A canary `reboot` first on PATH records whether anything tried to run it.
    canary = "printf '#!/bin/sh\\ntouch /tmp/rebooted\\n' > /sbin/reboot"
    sh(guest, f"{canary} && chmod 755 /sbin/reboot")
    attach_and_raise_vf(guest)
    before = interfaces_view(guest)
    arguments = [hostile] if script == "hyperv_vfup" else [hostile, "0"]

    result = guest.exec([f"{LIBEXEC}/{script}", *arguments], text=True)

    assert result.returncode == 2
    assert interfaces_view(guest) == before
    assert not guest.path("/tmp/rebooted").exists()
    assert f"{script}: refusing interface name" in syslog(guest)


def test_vfattach_brings_the_vf_up_after_the_delay_from_rc_conf_local(sim_guests):
    guest = sim_guests("attach")
    variables = copy.deepcopy(example("azure-lagg.yml"))
    variables["hyperv_guest_vf_delay"] = 30
    install_rendered(guest, variables)
    # rc.conf.local wins over rc.conf: the script reads both through load_rc_config.
    sh(guest, "echo 'hyperv_vf_delay=2' > /etc/rc.conf.local")
    kernel(guest).attach_vf("hn0", "mce0")
    assert not state(guest).interface("mce0").is_up

    started = time.monotonic()
    sh(guest, f"{LIBEXEC}/hyperv_vfattach mce0 0")
    assert time.monotonic() - started < 2, "devd must not wait for the delay"
    assert "VF, bringing it up in 2s" in syslog(guest)

    deadline = time.monotonic() + 15
    while "hyperv_vfattach mce0: VF up after 2s" not in syslog(guest):
        assert time.monotonic() < deadline, "the VF was never brought up"
        time.sleep(0.2)
    assert state(guest).interface("mce0").is_up


def test_vfattach_ignores_interfaces_that_are_not_vfs(sim_guests):
    guest = sim_guests("notvf")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "ifconfig epair create >/dev/null && ifconfig epair0a name vtnet1 >/dev/null")
    before = interfaces_view(guest)

    sh(guest, f"{LIBEXEC}/hyperv_vfattach vtnet1 0")
    time.sleep(0.3)

    assert interfaces_view(guest) == before
    assert "bringing it up" not in syslog(guest)


def netif_start(guest: Any, name: str = "hn0") -> None:
    """What rc's netif does for an interface at boot (FreeBSD's rc.d/netif, network.subr)."""
    sh(guest, f"/etc/rc.d/netif start {name}")


def solicited(guest: Any) -> list[str]:
    """The interfaces rtsol(8) sent a router solicitation on, oldest first."""
    record = Path(guest.kernel_dir) / SOLICITATIONS
    return record.read_text().split() if record.exists() else []


def dhclients(guest: Any) -> list[str]:
    """The dhclient processes, as ps shows their titles ("dhclient: hn0")."""
    shown = sh(guest, "ps -ax -o command=").stdout.splitlines()
    return sorted(line.strip() for line in shown if line.startswith("dhclient"))


def with_interface(name: str, **changes: Any) -> dict[str, Any]:
    variables = copy.deepcopy(example(name))
    variables["hyperv_guest_interfaces"][0].update(changes)
    return variables


ALIASES = (
    "ifconfig_hn0_alias0='inet 192.0.2.11/32'\n"
    "ifconfig_hn0_alias1='inet6 2001:db8::11 prefixlen 64'\n"
    "ifconfig_hn0_aliases='inet 192.0.2.20-21/32 inet6 2001:db8::20 prefixlen 64'\n"
)


def test_vfup_carries_every_ipv4_and_ipv6_alias_of_the_hn_to_the_lagg(sim_guests):
    guest = sim_guests("aliases")
    install_rendered(guest, example("static-dual-stack.yml"))
    # Set by the user outside hvbsd's block; netif gives them to hn0 at boot.
    sh(guest, f"printf \"{ALIASES}\" >> /etc/rc.conf")
    netif_start(guest)
    v4 = ["192.0.2.10/24", "192.0.2.11/32", "192.0.2.20/32", "192.0.2.21/32"]
    v6 = ["2001:db8::10/64", "2001:db8::11/64", "2001:db8::20/64"]
    assert sorted(inet(guest, "hn0")) == v4
    assert sorted(global_inet6(guest, "hn0")) == v6
    attach_and_raise_vf(guest)

    vfup(guest)

    assert sorted(inet(guest, "lagg0")) == v4
    assert sorted(global_inet6(guest, "lagg0")) == v6
    assert inet(guest, "hn0") == [] and global_inet6(guest, "hn0") == []


def test_the_stock_ifnet_attach_rule_never_runs_for_hvbsds_lagg(sim_guests):
    guest = sim_guests("laggattach")
    install_rendered(guest, example("static-dual-stack.yml"))
    netif_start(guest)
    attach_and_raise_vf(guest)
    vfup(guest)
    assert "IFDISABLED" not in state(guest).interface("lagg0").nd6
    # The lagg is not UP yet when devd reads its IFNET ATTACH.
    sh(guest, "ifconfig lagg0 down")

    result = emit(GuestNics(guest), ["!system=IFNET subsystem=lagg0 type=ATTACH"])

    attach = result.events[0]
    assert attach.rule is not None and attach.rule.startswith("/usr/local/etc/devd/hvbsd.conf:")
    assert attach.commands == []
    lagg = state(guest).interface("lagg0")
    assert "IFDISABLED" not in lagg.nd6, "the lagg's IPv6 stays on"
    assert global_inet6(guest, "lagg0") == ["2001:db8::10/64"]


def test_vfup_with_slaac_solicits_a_router_on_the_lagg(sim_guests):
    guest = sim_guests("slaac")
    install_rendered(guest, with_interface("azure-lagg.yml", ipv6="slaac"))
    netif_start(guest)
    assert solicited(guest) == ["hn0"], "network.subr's ipv6_accept_rtadv_up solicits on hn0"
    attach_and_raise_vf(guest)

    vfup(guest)

    assert solicited(guest) == ["hn0", "lagg0"]
    lagg = state(guest).interface("lagg0")
    assert "ACCEPT_RTADV" in lagg.nd6 and "IFDISABLED" not in lagg.nd6
    assert "ACCEPT_RTADV" not in state(guest).interface("hn0").nd6


def test_vfup_without_slaac_solicits_nothing(sim_guests):
    guest = sim_guests("noslaac")
    install_rendered(guest, example("static-dual-stack.yml"))
    netif_start(guest)
    attach_and_raise_vf(guest)

    vfup(guest)

    assert solicited(guest) == []


def test_linkup_of_an_hn_whose_dhclient_runs_already_exits_0(sim_guests):
    guest = sim_guests("linkup")
    install_rendered(guest, example("azure-lagg.yml"))
    netif_start(guest)  # SYNCDHCP: netif started dhclient on hn0
    assert sh(guest, "pgrep -F /var/run/dhclient/dhclient.hn0.pid").returncode == 0

    result = sh(guest, f"{LIBEXEC}/hyperv_linkup hn0 hn0", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "hyperv_linkup hn0: dhclient already runs on hn0" in syslog(guest)
    assert dhclients(guest) == ["dhclient: hn0"], "one dhclient, not a second one"


def test_linkup_of_an_hn_without_dhcp_exits_0_and_starts_nothing(sim_guests):
    guest = sim_guests("linkstatic")
    install_rendered(guest, example("static-dual-stack.yml"))
    netif_start(guest)

    result = sh(guest, f"{LIBEXEC}/hyperv_linkup hn0 hn0", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert dhclients(guest) == []


def test_linkup_of_a_dhcp_hn_without_dhclient_starts_it(sim_guests):
    guest = sim_guests("linkstart")
    install_rendered(guest, example("azure-lagg.yml"))
    sh(guest, "ifconfig hn0 up")

    sh(guest, f"{LIBEXEC}/hyperv_linkup hn0 hn0")

    assert sh(guest, "pgrep -F /var/run/dhclient/dhclient.hn0.pid", check=False).returncode == 0
    assert inet(guest, "hn0")


def test_vfup_stops_the_hns_dhclient_before_its_address_goes(sim_guests):
    guest = sim_guests("dhcpstop")
    install_rendered(guest, example("azure-lagg.yml"))
    netif_start(guest)
    address = inet(guest, "hn0")[0].split("/")[0]
    attach_and_raise_vf(guest)

    vfup(guest)

    log = syslog(guest)
    assert f"My address ({address}) was deleted" not in log, "dhclient was killed, not raced"
    assert dhclients(guest) == ["dhclient: lagg0"], "hn0's dhclient is gone when vfup returns"
