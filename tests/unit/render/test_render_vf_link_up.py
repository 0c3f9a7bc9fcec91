"""A VF's IFNET LINK_UP stops at hvbsd's rule that runs nothing; the hn's and lagg's do not.

FreeBSD's stock link-up rule (sbin/devd/devd.conf on 14.x, sbin/devd/dhclient.conf
where it moved later: ``notify 0``, ``media-type "ethernet"``, ``service dhclient
quietstart $subsystem``) reaches every Ethernet interface. rc.d/dhclient starts
dhclient wherever network.subr's dhcpif holds, and with ``ifconfig_DEFAULT="SYNCDHCP"``
(network.subr _ifconfig_getargs falls back to ifconfig_DEFAULT) it holds for a VF too.
"""

from __future__ import annotations

import pytest

from hvbsd.devd import Event, parse_text
from hvbsd.render import render_host

HVBSD_FILE = "/usr/local/etc/devd/hvbsd.conf"
STOCK_FILE = "/etc/devd/dhclient.conf"
STOCK_LINK_UP = """
notify 0 { match "system" "IFNET"; match "type" "LINK_UP"; media-type "ethernet";
  action "service dhclient quietstart $subsystem"; };
notify 0 { match "system" "IFNET"; match "type" "LINK_UP"; media-type "802.11";
  action "service dhclient quietstart $subsystem"; };
"""
DEFAULT_VFS = ("mce0", "mce12", "mlxen0", "mana0", "mana3")


def _config(variables: dict, hvbsd_first: bool):
    hvbsd = render_host(variables)[HVBSD_FILE].content.decode()
    files = [(STOCK_FILE, STOCK_LINK_UP), (HVBSD_FILE, hvbsd)]
    if hvbsd_first:
        files.reverse()
    config = parse_text(files[0][1], files[0][0])
    config.extend(files[1][1], files[1][0])
    return config


def _link_up(config, name: str):
    return config.first_match(Event.notify("IFNET", name, "LINK_UP"), lambda _: "ethernet")


@pytest.mark.parametrize("hvbsd_first", [False, True], ids=["stock-first", "hvbsd-first"])
@pytest.mark.parametrize("mode", ["lagg", "transparent"])
def test_vf_link_up_runs_nothing_in_both_modes(mode, hvbsd_first):
    config = _config({"hyperv_guest_mode": mode, "hyperv_guest_interfaces": [{"name": "hn0"}]},
                     hvbsd_first)
    for vf in DEFAULT_VFS:
        rule = _link_up(config, vf)
        assert rule is not None and rule.file == HVBSD_FILE and rule.commands == (), (
            f"{vf} LINK_UP: devd would run {rule.file if rule else None}: "
            f"{rule.commands if rule else ''}")


@pytest.mark.parametrize("hvbsd_first", [False, True], ids=["stock-first", "hvbsd-first"])
def test_hn_and_lagg_link_up_keep_hyperv_linkup_in_lagg_mode(hvbsd_first):
    variables = {"hyperv_guest_mode": "lagg",
                 "hyperv_guest_interfaces": [{"name": "hn0"}, {"name": "hn1", "lagg": "lagg7"}]}
    config = _config(variables, hvbsd_first)
    for hn, name in (("hn0", "hn0"), ("hn0", "lagg0"), ("hn1", "hn1"), ("hn1", "lagg7")):
        rule = _link_up(config, name)
        assert rule is not None and rule.commands == (
            f"/usr/local/libexec/hvbsd/hyperv_linkup {hn} $subsystem",), (name, rule)


def test_hn_link_up_stays_with_the_stock_dhclient_rule_in_transparent_mode():
    config = _config({"hyperv_guest_mode": "transparent",
                      "hyperv_guest_interfaces": [{"name": "hn0"}]}, True)
    for name in ("hn0", "hn1", "em0", "vtnet0", "manage0", "mcex0"):
        rule = _link_up(config, name)
        assert rule is not None and rule.file == STOCK_FILE, (name, rule)
        assert rule.commands == ("service dhclient quietstart $subsystem",)


def test_the_shadow_follows_hyperv_guest_vf_drivers():
    config = _config({"hyperv_guest_mode": "lagg", "hyperv_guest_vf_drivers": ["ixv"],
                      "hyperv_guest_interfaces": [{"name": "hn0"}]}, False)
    assert _link_up(config, "ixv0").commands == ()
    assert _link_up(config, "mana0").file == STOCK_FILE
    none = _config({"hyperv_guest_mode": "lagg", "hyperv_guest_vf_drivers": [],
                    "hyperv_guest_interfaces": [{"name": "hn0"}]}, False)
    assert _link_up(none, "mce0").file == STOCK_FILE
