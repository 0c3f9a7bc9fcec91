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
