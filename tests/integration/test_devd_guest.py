"""Events dispatched in a simulated guest through the rules installed there."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

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


def test_hostile_subsystem_is_one_word_for_the_script_under_quoting_devd(sim_guests):
    guest = sim_guests("hostile")
    install_rendered(guest, lagg_variables())
    record = dispatch(guest, '!system=HYPERV_NIC_VF subsystem="hn0;touch /tmp/pwned" type=VF_UP')
    assert record.statuses == (2,), "the script refuses the name"
    assert not guest.path("/tmp/pwned").exists()
    assert Kernel(guest.kernel_dir).snapshot().find("lagg0") is None
