"""VF hot-plug end to end: the rendered config in a guest, events derived from the kernel.

`hvbsd.sim.hyperv_nic` plays what the Hyper-V host and hn(4) do; every event
goes through the guest's installed devd rules (`dispatch`), and the real
scripts run inside the guest.  Quoting matters for what reaches the scripts,
so the main scenarios run under both devd substitution modes.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.sim.hyperv_nic import GuestNics, emit, migrate, vf_attach, vf_detach
from hvbsd.sim.kernel import Kernel, State
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUOTINGS = ["quoted", "raw"]


def variables(name: str, **changes: Any) -> dict[str, Any]:
    loaded = copy.deepcopy(yaml.safe_load((ROOT / "examples" / name).read_text()))
    loaded["hyperv_guest_vf_delay"] = 2
    loaded.update(changes)
    return loaded



def boot_hn(guest: Any, hn: str = "hn0") -> None:
    """What rc's netif does for hn at boot (ifconfig_hnN from rc.conf)."""
    result = guest.exec(["/etc/rc.d/netif", "start", hn], text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def state(guest: Any) -> State:
    return Kernel(guest.kernel_dir).snapshot()


def inet(guest: Any, name: str) -> list[str]:
    return [f"{a.address}/{a.prefixlen}" for a in state(guest).interface(name).inet]


def global_inet6(guest: Any, name: str) -> list[str]:
    return [f"{a.address}/{a.prefixlen}" for a in state(guest).interface(name).inet6
            if not a.address.startswith("fe80:")]


def interfaces_view(guest: Any) -> list[tuple[Any, ...]]:
    return [(i.name, tuple(i.flags), tuple(a.address for a in i.inet),
             tuple(a.address for a in i.inet6), i.lagg_proto, tuple(i.lagg_ports))
            for i in state(guest).interfaces]


def events(result: Any) -> list[str]:
    return [record.event for record in result.events]


def ifconfig(guest: Any, name: str) -> str:
    return str(guest.exec(["ifconfig", name], text=True, check=True).stdout)


def lagg_guest(sim_guests: Any, name: str, example: str = "azure-lagg.yml", **changes: Any) -> Any:
    guest = sim_guests(name)
    install_rendered(guest, variables(example, **changes))
    boot_hn(guest)
    return guest


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_attach_builds_failover_lagg_hn_first_vf_active_address_moved(sim_guests, quoting):
    guest = lagg_guest(sim_guests, "attach")
    address = inet(guest, "hn0")
    assert address, "rc gave hn0 a DHCP lease"

    result = vf_attach(GuestNics(guest), "hn0", quoting=quoting)

    assert result.ok, result.notes
    seen = events(result)
    assert seen[:2] == ["!system=IFNET subsystem=mce0 type=ATTACH",
                        "!system=ETHERNET subsystem=mce0 type=IFATTACH"]
    link_down = seen.index("!system=IFNET subsystem=hn0 type=LINK_DOWN")
    assert seen[link_down + 1] == "!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP"
    vf_up = result.events[link_down + 1]
    assert vf_up.rule.startswith("/usr/local/etc/devd/hvbsd.conf:") and vf_up.statuses == [0]
    hn0 = {"quoted": "$'hn0'", "raw": "hn0"}[quoting]
    assert vf_up.commands == [f"/usr/local/libexec/hvbsd/hyperv_vfup {hn0}"], vf_up.commands
    lagg = state(guest).interface("lagg0")
    assert lagg.lagg_proto == "failover" and lagg.lagg_ports == ["hn0", "mce0"]
    shown = ifconfig(guest, "lagg0")
    assert "\tlaggport: hn0 flags=1<MASTER>" in shown
    assert "\tlaggport: mce0 flags=4<ACTIVE>" in shown
    assert inet(guest, "lagg0") == address and inet(guest, "hn0") == []
    log = (guest.state_dir / "events.log").read_text()
    logged = [json.loads(line) for line in log.splitlines()]
    assert [entry["event"] for entry in logged] == seen
    assert all(entry["quoting"] == quoting for entry in logged)


def test_attach_moves_static_ipv4_and_ipv6_to_the_lagg(sim_guests):
    guest = lagg_guest(sim_guests, "static", "static-dual-stack.yml")
    assert inet(guest, "hn0") == ["192.0.2.10/24"]

    assert vf_attach(GuestNics(guest), "hn0").ok

    assert inet(guest, "lagg0") == ["192.0.2.10/24"]
    assert global_inet6(guest, "lagg0") == ["2001:db8::10/64"]
    assert inet(guest, "hn0") == [] and global_inet6(guest, "hn0") == []


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_detach_keeps_hn_in_the_lagg_and_the_address(sim_guests, quoting):
    guest = lagg_guest(sim_guests, "detach")
    nics = GuestNics(guest)
    vf_attach(nics, "hn0", quoting=quoting)
    address = inet(guest, "lagg0")

    result = vf_detach(nics, "hn0", quoting=quoting)

    assert result.ok
    seen = events(result)
    assert seen[:2] == ["!system=HYPERV_NIC_VF subsystem=hn0 type=VF_DOWN",
                        "!system=IFNET subsystem=mce0 type=DETACH"]
    assert not any("IFDETACH" in line for line in seen), "the kernel has no ETHERNET IFDETACH"
    assert "!system=IFNET subsystem=hn0 type=LINK_UP" in seen
    assert seen[-1] == "!system=IFNET subsystem=lagg0 type=LINK_UP"
    snapshot = state(guest)
    assert snapshot.find("mce0") is None
    assert snapshot.interface("lagg0").lagg_ports == ["hn0"]
    assert "\tlaggport: hn0 flags=5<MASTER,ACTIVE>" in ifconfig(guest, "lagg0")
    assert inet(guest, "lagg0") == address


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_reattach_and_migrate_rejoin_the_one_lagg(sim_guests, quoting):
    guest = lagg_guest(sim_guests, "again")
    nics = GuestNics(guest)
    vf_attach(nics, "hn0", quoting=quoting)
    address = inet(guest, "lagg0")
    vf_detach(nics, "hn0", quoting=quoting)

    assert vf_attach(nics, "hn0", quoting=quoting).ok
    assert state(guest).interface("lagg0").lagg_ports == ["hn0", "mce0"]

    moved = migrate(nics, "hn0", quoting=quoting)

    assert moved.ok, moved.notes
    assert moved.scenario == "migrate hn0 mce0 -> mana0"
    snapshot = state(guest)
    assert snapshot.find("mce0") is None
    assert snapshot.interface("lagg0").lagg_ports == ["hn0", "mana0"]
    assert [i.name for i in snapshot.interfaces if i.is_lagg] == ["lagg0"]
    assert inet(guest, "lagg0") == address
    assert "mana0 added to lagg0 again" in guest.path("/var/log/messages").read_text()


def test_repeated_events_change_nothing(sim_guests):
    guest = lagg_guest(sim_guests, "repeat")
    nics = GuestNics(guest)
    vf_attach(nics, "hn0")
    before = interfaces_view(guest)

    again = emit(nics, ["!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP",
                        "!system=ETHERNET subsystem=mce0 type=IFATTACH",
                        "!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP",
                        "!system=IFNET subsystem=lagg0 type=LINK_UP"])

    assert [r.statuses for r in again.events] == [[0], [0], [0], [0]]
    assert events(again)[4:] == [], "the repeats changed nothing the kernel would announce"
    assert interfaces_view(guest) == before


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_transparent_mode_hn_keeps_link_and_nothing_runs(sim_guests, quoting):
    guest = sim_guests("xpnt")
    install_rendered(guest, variables("transparent.yml"))
    boot_hn(guest)
    address = inet(guest, "hn0")

    result = vf_attach(GuestNics(guest), "hn0", quoting=quoting)

    assert result.ok
    seen = events(result)
    assert not any("HYPERV_NIC_VF" in line or "subsystem=hn0" in line for line in seen)
    snapshot = state(guest)
    assert snapshot.interface("mce0").is_up, "hn brought its VF up itself"
    assert snapshot.link_of(snapshot.interface("hn0")) == "up"
    assert not any(i.is_lagg for i in snapshot.interfaces)
    assert inet(guest, "hn0") == address
    assert all(not r.commands for r in result.events if "mce0 type=" in r.event
               and "LINK_UP" not in r.event), "hvbsd's rules shadow the VF's attach"


HOSTILE = {
    "quoted": ["hn0;touch /tmp/pwned", "$(touch /tmp/pwned)", "../hn0", "hn0 hn1"],
    # Older devd pastes values into the command line; hvbsd's rules only let names
    # of the interface grammar through (case-insensitively, as 14.x's REG_ICASE):
    "raw": ["hn0;touch /tmp/pwned", "../hn0", "HN0", "hn" + "0" * 20, "-hn0"],
}


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_vf_events_with_hostile_names_are_refused_with_nothing_changed(sim_guests, quoting):
    guest = lagg_guest(sim_guests, "hostile")
    before = interfaces_view(guest)
    lines = []
    for name in HOSTILE[quoting]:
        quoted = '"' + name.replace('"', '\\"') + '"'
        lines += [f"!system=ETHERNET subsystem={quoted} type=IFATTACH",
                  f"!system=HYPERV_NIC_VF subsystem={quoted} type=VF_UP"]

    result = emit(GuestNics(guest), lines, quoting=quoting)

    # the rules run nothing for a name outside the grammar; "HN0" reaches the script,
    # which refuses it
    assert [r.statuses for r in result.events] == [
        [2] if "HN0" in line else [] for line in lines]
    assert interfaces_view(guest) == before
    assert not guest.path("/tmp/pwned").exists()
    if quoting == "raw":
        assert "refusing interface name" in guest.path("/var/log/messages").read_text()


def test_static_lagg_from_rc_conf_exists_at_boot_and_the_vf_joins_it(sim_guests):
    guest = sim_guests("static-lagg")
    install_rendered(guest, variables("azure-lagg.yml", hyperv_guest_static_lagg=True))
    guest.stop()
    guest.start()

    lagg = state(guest).interface("lagg0")
    assert lagg.lagg_ports == ["hn0"], "hn is the first port before any VF"
    assert inet(guest, "lagg0"), "SYNCDHCP on the lagg at boot"
    address = inet(guest, "lagg0")

    result = vf_attach(GuestNics(guest), "hn0")

    assert result.ok, result.notes
    assert "!system=IFNET subsystem=lagg0 type=LINK_DOWN" in events(result)
    snapshot = state(guest)
    assert snapshot.interface("lagg0").lagg_ports == ["hn0", "mce0"]
    assert [i.name for i in snapshot.interfaces if i.is_lagg] == ["lagg0"]
    assert inet(guest, "lagg0") == address
    assert "\tlaggport: mce0 flags=4<ACTIVE>" in ifconfig(guest, "lagg0")


def test_cli_attach_prints_json_and_refuses_bad_input(sim_guests, sim_root, hvbsd_env):
    guest = lagg_guest(sim_guests, "cli")
    base = [sys.executable, "-m", "hvbsd", "sim"]

    done = subprocess.run([*base, "vf", "attach", guest.name, "hn0", "--vf", "mce3", "--json"],
                          env=hvbsd_env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["ok"] and shown["scenario"] == "vf attach hn0 mce3"
    assert "ports hn0 mce3" in shown["interfaces"]["lagg0"]
    for argv in (["vf", "attach", guest.name, "hn0", "--vf", "mce0;reboot"],
                 ["vf", "attach", guest.name, "lo0"],
                 ["vf", "detach", guest.name, "hn7"]):
        refused = subprocess.run([*base, *argv], env=hvbsd_env, capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode == 2, refused.stderr
    added = subprocess.run([*base, "nic", "add", guest.name], env=hvbsd_env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "!system=IFNET subsystem=hn1 type=ATTACH" in added.stdout
