"""Events dispatched in a simulated guest through the rules installed there."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from hvbsd import releases
from hvbsd.devd import Event
from hvbsd.sim.devd_guest import dispatch
from hvbsd.sim.kernel import Kernel
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]



def lagg_variables() -> dict:
    variables = copy.deepcopy(yaml.safe_load((ROOT / "examples/azure-lagg.yml").read_text()))
    variables["hyperv_guest_vf_delay"] = 2
    return variables


def test_stock_link_up_rule_runs_dhclient_in_the_guest(sim_guest):
    record = dispatch(sim_guest, "!system=IFNET subsystem=hn0 type=LINK_UP")
    assert record.rule is not None and record.rule.file == "/etc/devd.conf"
    assert record.statuses == (0,)
    assert Kernel(sim_guest.kernel_dir).snapshot().interface("hn0").inet
    assert "LINK_UP" in (sim_guest.state_dir / "devd.log").read_text()


@pytest.mark.parametrize("quoting", ["quoted", "raw"])
def test_vf_hot_plug_through_hvbsds_rules_builds_the_lagg(sim_guests, quoting):
    guest = sim_guests("plug")
    install_rendered(guest, lagg_variables())
    kernel = Kernel(guest.kernel_dir)
    dispatch(guest, "!system=IFNET subsystem=hn0 type=LINK_UP", quoting=quoting)
    address = [a.address for a in kernel.snapshot().interface("hn0").inet]

    kernel.attach_vf("hn0", "mce0")
    attach = dispatch(guest, "!system=ETHERNET subsystem=mce0 type=IFATTACH", quoting=quoting)
    assert attach.rule.file == "/usr/local/etc/devd/hvbsd.conf"
    deadline = time.monotonic() + 15
    while not kernel.snapshot().interface("mce0").is_up:
        assert time.monotonic() < deadline, "hyperv_vfattach never brought the VF up"
        time.sleep(0.2)
    up = dispatch(guest, "!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP", quoting=quoting)

    assert up.rule.file == "/usr/local/etc/devd/hvbsd.conf"
    assert up.statuses == (0,)
    lagg = kernel.snapshot().interface("lagg0")
    assert lagg.lagg_ports == ["hn0", "mce0"]
    assert [a.address for a in lagg.inet] == address


def hostile_names(canary: str) -> list[str]:
    """Interface names that try to run `touch canary` in every way a shell allows."""
    touch = f"touch {canary}"
    names = [f"hn0{char}{touch}" for char in ";&|<>()$`\\\"' \t\n*?[]#~=%!{}^,"]
    names += [
        f"$({touch})", f"`{touch}`", f"hn0$({touch})", f"hn0`{touch}`", f"hn0;{touch};",
        f"hn0&&{touch}", f"hn0||{touch}", f"';{touch};'", f'";{touch};"', f"hn0\n{touch}",
        f"hn0\r\n{touch}", f">{canary}", f"hn0>{canary}", f"${{IFS}}{touch}",
        f"mce0;{touch}", f"hn0\\;{touch}", "-rf", "../../etc/passwd", "hn0 hn1", "",
        "hn" + "0" * 40, f"hn0\u037e{touch}", "\uff48\uff4e0", f"hn0\u2028{touch}",
        f"hn0\u00a0{touch}", "mce\U0001f4a50",
    ]
    return names


@pytest.mark.parametrize("quoting", ["quoted", "raw"])
def test_hostile_interface_names_never_reach_a_shell_through_hvbsds_rules(sim_guests, quoting):
    guest = sim_guests("hostile")
    install_rendered(guest, lagg_variables())
    names = hostile_names("/tmp/canary")
    assert len(names) > 50
    log_file = guest.state_dir / "devd.log"
    logged_before = len(log_file.read_bytes().splitlines()) if log_file.exists() else 0
    for name in names:
        for system, kind in (("ETHERNET", "IFATTACH"), ("HYPERV_NIC_VF", "VF_UP")):
            record = dispatch(guest, Event.notify(system, name, kind), quoting=quoting)
            assert record.rule is not None
            assert record.rule.file == "/usr/local/etc/devd/hvbsd.conf", record.describe()
            assert record.commands == (), record.describe()
            assert not guest.path("/tmp/canary").exists(), f"{quoting}: {name!r} ran code"
    assert Kernel(guest.kernel_dir).snapshot().find("lagg0") is None
    log = log_file.read_text(encoding="ascii")  # printable: no event forges a line
    assert len(log.splitlines()) == logged_before + 2 * len(names)


@pytest.mark.parametrize("release", releases.supported(), ids=lambda r: r.name)
def test_stock_vf_attach_rule_runs_as_that_releases_devd_runs_it(sim_guests, release):
    """No hvbsd files: ETHERNET IFATTACH reaches the release's stock hyperv.conf rule.

    On a release whose devd sets vm_guest, the rule runs because the guest's
    kern.vm_guest is "hv" (an event's own vm_guest= pair wins over it); on a
    release whose devd sets none, the rule has no vm_guest match and runs anyway.
    """
    guest = sim_guests("stock" + release.name.replace(".", "-"), release=release)
    assert Kernel(guest.kernel_dir).snapshot().sysctl_value("kern.vm_guest") == "hv"
    record = dispatch(guest, "!system=ETHERNET subsystem=mce0 type=IFATTACH")
    assert record.rule is not None and record.rule.file == "/etc/devd/hyperv.conf"
    assert record.commands == ("/usr/libexec/hyperv/hyperv_vfattach $'mce0' 0",)
    elsewhere = dispatch(guest, "!system=ETHERNET subsystem=mce0 type=IFATTACH vm_guest=kvm")
    if release.devd_vm_guest:
        assert elsewhere.rule is None, elsewhere.describe()
    else:
        assert elsewhere.rule is not None and elsewhere.rule.file == "/etc/devd/hyperv.conf"
