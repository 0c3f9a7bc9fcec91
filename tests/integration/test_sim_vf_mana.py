"""MANA VFs and migrations that change NIC family, on a guest with ifconfig_DEFAULT="SYNCDHCP".

Azure pairs an accelerated NIC's VF with its hn(4): mlx5en (mce), mlx4en
(mlxen) or, on current hardware, mana(4). A live migration can land the guest
on a host of another family: the old VF detaches and one of the new family
attaches with the hn's MAC (hn(4) takes any Ethernet ifnet with its MAC as its
VF: sys/dev/hyperv/netvsc/if_hn.c hn_ismyvf).

Cloud images commonly set ``ifconfig_DEFAULT="SYNCDHCP"``: every interface
without its own ifconfig_IF is then a DHCP interface to rc (network.subr
_ifconfig_getargs, dhcpif), and the stock ``IFNET LINK_UP`` rule runs
``service dhclient quietstart`` on a VF's link-up. hvbsd's rules must keep
dhclient off every VF, in both modes, through attach, detach, re-attach and
migration. The real rc scripts and hvbsd's scripts run in the guest (real sh).

Every scenario runs on each supported release when the simulator can create
a guest of a given release (``Guest.create(release=...)``); until then on the
simulator's one release.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from hvbsd import releases
from hvbsd.sim.guest import Guest
from hvbsd.sim.hyperv_nic import GuestNics, migrate, vf_attach, vf_detach
from hvbsd.sim.kernel import Kernel, State
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SYNCDHCP_DEFAULT = 'ifconfig_DEFAULT="SYNCDHCP"'


def _releases() -> list[Optional[str]]:
    """Hook: every supported release once guests can be created per release."""
    if "release" in inspect.signature(Guest.create).parameters:
        return list(releases.names())
    return [None]


RELEASES = _releases()


def variables(example: str, **changes: Any) -> dict[str, Any]:
    loaded = copy.deepcopy(yaml.safe_load((ROOT / "examples" / example).read_text()))
    loaded["hyperv_guest_vf_delay"] = 2
    loaded.update(changes)
    return loaded


def syncdhcp_guest(sim_guests: Any, name: str, release: Optional[str], example: str,
                   **changes: Any) -> Any:
    """A guest whose rc.conf has ifconfig_DEFAULT="SYNCDHCP", deployed, hn0 up via rc."""
    options = {} if release is None else {"release": release}
    guest = sim_guests(name, **options)
    guest.exec(["sh", "-c", f"echo '{SYNCDHCP_DEFAULT}' >> /etc/rc.conf"], check=True)
    install_rendered(guest, variables(example, **changes))
    booted = guest.exec(["/etc/rc.d/netif", "start", "hn0"], text=True, timeout=60)
    assert booted.returncode == 0, booted.stdout + booted.stderr
    return guest


def state(guest: Any) -> State:
    return Kernel(guest.kernel_dir).snapshot()


def inet(guest: Any, name: str) -> list[str]:
    return [f"{a.address}/{a.prefixlen}" for a in state(guest).interface(name).inet]


def dhclients(guest: Any) -> list[str]:
    """The interfaces a dhclient runs for (its process title, ``dhclient: IF``)."""
    shown = guest.exec(["pgrep", "-lf", "dhclient"], text=True).stdout
    return sorted(set(re.findall(r"\bdhclient: ([a-z][a-z0-9]*[0-9])\b", shown)))


def vf_names(guest: Any) -> list[str]:
    return [i.name for i in state(guest).interfaces if re.fullmatch(r"(mce|mlxen|mana)\d+", i.name)]


def assert_no_dhclient_on_a_vf(guest: Any, step: str, *gone: str) -> None:
    running = dhclients(guest)
    on_vfs = [name for name in running if name in {*vf_names(guest), *gone}]
    assert on_vfs == [], f"after {step}: dhclient runs on {on_vfs} (all: {running})"
    leftover = [name for name in (*vf_names(guest), *gone)
                if guest.path(f"/var/run/dhclient/dhclient.{name}.pid").exists()]
    assert leftover == [], f"after {step}: dhclient pidfiles of VFs {leftover}"


def ifconfig(guest: Any, name: str) -> str:
    return str(guest.exec(["ifconfig", name], text=True, check=True).stdout)


@pytest.mark.parametrize("release", RELEASES)
def test_syncdhcp_lagg_guest_keeps_dhclient_off_every_vf_through_attach_reattach_and_mce_to_mana(
        sim_guests, release):
    guest = syncdhcp_guest(sim_guests, "syncl", release, "azure-lagg.yml")
    nics = GuestNics(guest)
    assert dhclients(guest) == ["hn0"], "rc's netif ran dhclient for hn0 only"
    address = inet(guest, "hn0")
    assert address

    attached = vf_attach(nics, "hn0")
    assert attached.ok, attached.notes
    assert_no_dhclient_on_a_vf(guest, "attach")
    assert state(guest).interface("lagg0").lagg_ports == ["hn0", "mce0"]
    assert inet(guest, "lagg0") == address
    assert dhclients(guest) == ["lagg0"]

    assert vf_detach(nics, "hn0").ok
    assert_no_dhclient_on_a_vf(guest, "detach", "mce0")
    assert state(guest).interface("lagg0").lagg_ports == ["hn0"]

    assert vf_attach(nics, "hn0").ok
    assert_no_dhclient_on_a_vf(guest, "re-attach")

    moved = migrate(nics, "hn0")

    assert moved.ok, moved.notes
    assert moved.scenario == "migrate hn0 mce0 -> mana0"
    assert_no_dhclient_on_a_vf(guest, "migrate", "mce0")
    snapshot = state(guest)
    assert snapshot.find("mce0") is None, "the old VF is still there"
    assert snapshot.interface("lagg0").lagg_ports == ["hn0", "mana0"]
    assert snapshot.interface("mana0").ether == snapshot.interface("hn0").hwaddr
    assert "\tlaggport: mana0 flags=4<ACTIVE>" in ifconfig(guest, "lagg0")
    assert "mce0" not in ifconfig(guest, "lagg0")
    assert inet(guest, "lagg0") == address
    assert dhclients(guest) == ["lagg0"]
    link_up = [r for r in moved.events if r.event == "!system=IFNET subsystem=mana0 type=LINK_UP"]
    assert link_up and all(r.commands == [] for r in link_up), [vars(r) for r in link_up]


@pytest.mark.parametrize("release", RELEASES)
def test_syncdhcp_transparent_guest_keeps_dhclient_off_the_vf_hn_drives(sim_guests, release):
    guest = syncdhcp_guest(sim_guests, "synct", release, "transparent.yml",
                           hyperv_guest_interfaces=[{"name": "hn0", "ipv4": "syncdhcp"}])
    assert dhclients(guest) == ["hn0"], "rc's netif ran dhclient for hn0 only"
    nics = GuestNics(guest)
    for step, play in (("attach", lambda: vf_attach(nics, "hn0", "mana0")),
                       ("detach", lambda: vf_detach(nics, "hn0")),
                       ("re-attach", lambda: vf_attach(nics, "hn0", "mana0")),
                       ("migrate", lambda: migrate(nics, "hn0"))):
        result = play()
        assert result.ok, (step, result.notes)
        assert_no_dhclient_on_a_vf(guest, step, "mana0")
        assert dhclients(guest) == ["hn0"], step
    assert vf_names(guest) == ["mlxen0"], "mana -> mlxen: the next NIC family"
    assert state(guest).find("lagg0") is None


def test_without_the_vf_shadow_the_stock_rules_start_dhclient_on_the_vf(sim_guests):
    """The control: the detector sees a dhclient on a VF that hvbsd does not know as one."""
    guest = syncdhcp_guest(sim_guests, "control", None, "azure-lagg.yml",
                           hyperv_guest_vf_drivers=["mce", "mlxen"])
    result = vf_attach(GuestNics(guest), "hn0", "mana0")
    link_up = [r for r in result.events if r.event == "!system=IFNET subsystem=mana0 type=LINK_UP"]
    assert link_up and link_up[0].rule.startswith("/etc/"), "the stock rule ran"
    assert "mana0" in dhclients(guest)


def test_mana_vf_is_an_ethernet_ifnet_with_the_hns_mac_and_manas_capabilities(sim_guests):
    guest = syncdhcp_guest(sim_guests, "mana", None, "azure-lagg.yml")
    result = vf_attach(GuestNics(guest), "hn0", "mana0")

    assert result.ok, result.notes
    assert result.scenario == "vf attach hn0 mana0"
    assert [r.event for r in result.events][:2] == [
        "!system=IFNET subsystem=mana0 type=ATTACH",
        "!system=ETHERNET subsystem=mana0 type=IFATTACH"]
    shown = ifconfig(guest, "mana0")
    # sys/dev/mana/mana_en.c mana_probe_port and mana_ifmedia_status
    assert "options=680703<RXCSUM,TXCSUM,TSO4,TSO6,LRO,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>" \
        in shown
    assert "media: Ethernet autoselect (100GBase-DR <full-duplex>)" in shown
    assert "mtu 1500" in shown and "status: active" in shown
    snapshot = state(guest)
    assert snapshot.interface("mana0").ether == snapshot.interface("hn0").hwaddr
    assert snapshot.interface("lagg0").lagg_ports == ["hn0", "mana0"]


def test_vf_move_and_migrate_choose_the_next_family_or_the_name_given(sim_guests, hvbsd_env):
    guest = syncdhcp_guest(sim_guests, "move", None, "azure-lagg.yml")
    base = [sys.executable, "-m", "hvbsd", "sim"]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *argv], env=hvbsd_env, capture_output=True, text=True,
                              timeout=120, check=False)

    assert run("vf", "attach", guest.name, "hn0", "--vf", "mana0").returncode == 0
    moved = run("vf", "move", guest.name, "hn0", "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["scenario"] == "migrate hn0 mana0 -> mlxen0"
    again = run("migrate", guest.name, "hn0", "--vf", "mana1", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["scenario"] == "migrate hn0 mlxen0 -> mana1"
    assert state(guest).interface("lagg0").lagg_ports == ["hn0", "mana1"]
    assert_no_dhclient_on_a_vf(guest, "vf move and migrate", "mana0", "mlxen0")
    for argv in (["vf", "move", guest.name, "hn0", "--vf", "mana0;reboot"],
                 ["vf", "move", guest.name, "mana1"],
                 ["vf", "move", guest.name, "hn0", "--vf", "lagg0"]):
        refused = run(*argv)
        assert refused.returncode == 2, (argv, refused.stdout, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr
    assert state(guest).interface("lagg0").lagg_ports == ["hn0", "mana1"], "nothing changed"
