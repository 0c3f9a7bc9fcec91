"""The simulated guest's stock FreeBSD 14 devd files parse and route events as FreeBSD's do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hvbsd.devd import Dispatcher, Event, load_tree

BASE = Path(__file__).resolve().parents[3] / "src/hvbsd/sim/freebsd/base"


@pytest.fixture(scope="module")
def stock():
    return load_tree(BASE)


def test_stock_files_load_in_devds_order(stock):
    assert stock.files == ["/etc/devd.conf", "/etc/devd/hyperv.conf"]
    assert stock.options.directories == ["/etc/devd", "/usr/local/etc/devd"]
    assert stock.options.pid_file == "/var/run/devd.pid"
    assert {"scsi-controller-regex", "wifi-driver-regex"} <= set(stock.options.variables)


@pytest.mark.parametrize(
    ("event", "priority", "command"),
    [
        (Event.notify("ETHERNET", "mce0", "IFATTACH"), 10,
         "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"),
        (Event.notify("ETHERNET", "hn0", "IFATTACH"), 10,
         "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"),  # no vm_guest filter in 14.x
        (Event.notify("HYPERV_NIC_VF", "hn0", "VF_UP"), 10,
         "/usr/libexec/hyperv/hyperv_vfup $subsystem"),
        (Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_kvp_dev"), 10, "/usr/sbin/hv_kvp_daemon"),
        (Event.notify("DEVFS", "CDEV", "DESTROY", cdev="hv_kvp_dev"), 10, "pkill -x hv_kvp_daemon"),
        (Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_fsvss_dev"), 11,
         "/usr/sbin/hv_vss_daemon"),
        (Event.notify("DEVFS", "CDEV", "DESTROY", cdev="hv_fsvss_dev"), 11,
         "pkill -x hv_vss_daemon"),
        (Event.notify("IFNET", "lagg0", "ATTACH"), 0, "/etc/pccard_ether $subsystem start"),
    ],
)
def test_events_hit_the_stock_rule(stock, event, priority, command):
    rule = stock.first_match(event)
    assert rule is not None
    assert (rule.priority, rule.commands) == (priority, (command,))


def test_hyperv_rules_live_in_hyperv_conf(stock):
    rule = stock.first_match(Event.notify("HYPERV_NIC_VF", "hn0", "VF_UP"))
    assert rule.file == "/etc/devd/hyperv.conf"


def test_link_up_starts_dhclient_on_ethernet_only(stock):
    event = Event.notify("IFNET", "hn0", "LINK_UP")
    rule = stock.first_match(event, lambda name: "ethernet" if name == "hn0" else None)
    assert rule.commands == ("service dhclient quietstart $subsystem",)
    assert stock.first_match(event) is None  # no media: no dhclient
    link_down = Event.notify("IFNET", "hn0", "LINK_DOWN")
    assert stock.first_match(link_down, lambda _name: "ethernet") is None


def test_usb_capture_and_wlan_interfaces_are_not_configured(stock):
    assert stock.first_match(Event.notify("IFNET", "usbus0", "ATTACH")) is None
    assert stock.first_match(Event.notify("IFNET", "wlan0", "ATTACH")) is None


def test_other_cdevs_fall_through(stock):
    assert stock.first_match(Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_appvss_dev")) is None


def test_dispatch_expands_the_vf_name_as_one_quoted_word(stock):
    ran = []
    Dispatcher(stock, run=lambda command: ran.append(command) or 0).dispatch(
        "!system=ETHERNET subsystem=mce0 type=IFATTACH"
    )
    assert ran == ["/usr/libexec/hyperv/hyperv_vfattach $'mce0' 0"]


def guest_tree(tmp_path: Path, local_rules: str) -> Path:
    root = tmp_path / "guest"
    shutil.copytree(BASE / "etc", root / "etc", ignore=shutil.ignore_patterns("rc.d", "defaults"))
    local = root / "usr/local/etc/devd"
    local.mkdir(parents=True)
    (local / "hvbsd.conf").write_text(local_rules, encoding="utf-8")
    return root


def vss_rule(priority: int) -> str:
    return (f'notify {priority} {{\n\tmatch "system" "DEVFS";\n\tmatch "subsystem" "CDEV";\n'
            f'\tmatch "type" "CREATE";\n\tmatch "cdev" "hv_fsvss_dev";\n'
            f'\taction "service hvbsd_vssd quietstart";\n}};\n')


def test_a_local_rule_above_the_stock_priority_wins(tmp_path):
    config = load_tree(guest_tree(tmp_path, vss_rule(12)))
    rule = config.first_match(Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_fsvss_dev"))
    assert (rule.file, rule.commands) == (
        "/usr/local/etc/devd/hvbsd.conf", ("service hvbsd_vssd quietstart",)
    )


def test_a_local_rule_at_the_stock_priority_loses_to_the_earlier_file(tmp_path):
    config = load_tree(guest_tree(tmp_path, vss_rule(11)))
    rule = config.first_match(Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_fsvss_dev"))
    assert rule.file == "/etc/devd/hyperv.conf"
