"""The simulator's stock devd files of each supported release route events as FreeBSD's do.

Each release's /etc/devd.conf and /etc/devd/hyperv.conf are written from
FreeBSD's sbin/devd/devd.conf and sbin/devd/hyperv.conf of its branch; the
facts pinned here are those files' rules (and, for vm_guest, what that
release's devd sets: hvbsd.devd.devd_vm_guest).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hvbsd import releases
from hvbsd.devd import Dispatcher, Event, devd_vm_guest, load_tree
from hvbsd.sim.freebsd import base_files, stock_tree

RELEASES = releases.supported()
WITH_VM_GUEST = [r for r in RELEASES if r.devd_vm_guest]
WITHOUT_VM_GUEST = [r for r in RELEASES if not r.devd_vm_guest]


def _name(release: releases.Release) -> str:
    return release.name


@pytest.fixture(scope="module", params=RELEASES, ids=_name)
def release(request) -> releases.Release:
    return request.param


@pytest.fixture(scope="module")
def stock(release):
    return load_tree(stock_tree(release.stock))


def event(release: releases.Release, line: str) -> Event:
    """The event as that release's devd holds it, on Hyper-V (kern.vm_guest=hv)."""
    return Event.parse(line, vm_guest=devd_vm_guest(release, "hv"))


def test_every_supported_release_has_stock_files():
    for each in RELEASES:
        paths = {path for path, _content, _mode in base_files(each.stock)}
        assert {"/etc/devd.conf", "/etc/devd/hyperv.conf", "/etc/rc.subr"} <= paths


def test_stock_files_load_in_devds_order(stock):
    assert stock.files == ["/etc/devd.conf", "/etc/devd/hyperv.conf"]
    assert stock.options.directories == ["/etc/devd", "/usr/local/etc/devd"]
    assert stock.options.pid_file == "/var/run/devd.pid"
    assert set(stock.options.variables) == {"wifi-driver-regex"}


def test_wifi_driver_list_is_current_freebsds(stock):
    regex = stock.options.variables["wifi-driver-regex"]
    drivers = regex.split("(", 1)[1].split(")", 1)[0].split("|")
    assert {"iwlwifi", "rtw", "rtwn", "iwm", "ath"} <= set(drivers)
    assert "wi" not in drivers  # wi(4) left FreeBSD before 14
    for driver in ("iwlwifi0", "rtw0", "iwm0"):
        rule = stock.first_match(Event.parse(f"+{driver} at pci0"))
        assert rule is not None and rule.commands == (
            "/etc/pccard_ether $device-name startchildren",)
    assert stock.first_match(Event.parse("+wi0 at pccard0")) is None


def test_no_scsi_pccard_or_coldsync_rules(stock, release):
    texts = (stock_tree(release.stock) / "etc/devd.conf").read_text()
    assert "coldsync" not in texts and "scsi-controller" not in texts
    coldsync = Event.notify("USB", "DEVICE", "ATTACH", vendor="0x082d", product="0x0100",
                            release="0x0100", cdev="ugen0.2")
    assert stock.first_match(coldsync) is None
    assert stock.first_match(Event.parse("+mpt0 at pci0")) is None  # SCSI rescan rule gone
    pccard = Event.parse("? at manufacturer=0xffffffff product=0xffffffff on pccard0")
    assert stock.first_match(pccard) is None
    usb = stock.first_match(Event.parse("? at vendor=0x1234 product=0x5678 on uhub0"))
    assert usb is not None and usb.commands[0].startswith("logger Unknown USB device")
    cardbus = stock.first_match(Event.parse("? at device=0x1 class=0x2 vendor=0x3 on cardbus0"))
    assert cardbus is not None and cardbus.commands[0].startswith("logger Unknown Cardbus")


@pytest.mark.parametrize(
    ("line", "priority", "command"),
    [
        ("!system=ETHERNET subsystem=mce0 type=IFATTACH", 10,
         "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"),
        ("!system=ETHERNET subsystem=mana0 type=IFATTACH", 10,
         "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"),
        ("!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP", 10,
         "/usr/libexec/hyperv/hyperv_vfup $subsystem"),
        ("!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_kvp_dev", 10,
         "/usr/sbin/hv_kvp_daemon"),
        ("!system=DEVFS subsystem=CDEV type=DESTROY cdev=hv_kvp_dev", 10,
         "pkill -x hv_kvp_daemon"),
        ("!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_fsvss_dev", 11,
         "/usr/sbin/hv_vss_daemon"),
        ("!system=DEVFS subsystem=CDEV type=DESTROY cdev=hv_fsvss_dev", 11,
         "pkill -x hv_vss_daemon"),
        ("!system=IFNET subsystem=lagg0 type=ATTACH", 0, "/etc/pccard_ether $subsystem start"),
        ("!system=IFNET subsystem=mana0 type=ATTACH", 0, "/etc/pccard_ether $subsystem start"),
    ],
)
def test_hyperv_events_hit_the_stock_rule_on_hyperv(stock, release, line, priority, command):
    rule = stock.first_match(event(release, line))
    assert rule is not None
    assert (rule.priority, rule.commands) == (priority, (command,))


@pytest.mark.parametrize("release", WITH_VM_GUEST, ids=_name)
def test_ifattach_rule_needs_vm_guest_hv_where_devd_sets_it(release):
    stock = load_tree(stock_tree(release.stock))
    line = "!system=ETHERNET subsystem=mce0 type=IFATTACH"
    assert stock.first_match(Event.parse(line, vm_guest="hv")).file == "/etc/devd/hyperv.conf"
    assert stock.first_match(Event.parse(line, vm_guest="kvm")) is None  # another hypervisor
    assert stock.first_match(Event.parse(line, vm_guest="none")) is None
    assert stock.first_match(Event.parse(line)) is None  # a devd without vm_guest: never runs
    # the event's own pair is read after the built-in, so it wins
    assert stock.first_match(Event.parse(line + " vm_guest=kvm", vm_guest="hv")) is None


@pytest.mark.parametrize("release", WITHOUT_VM_GUEST, ids=_name)
def test_ifattach_rule_runs_on_any_machine_where_devd_has_no_vm_guest(release):
    stock = load_tree(stock_tree(release.stock))
    assert devd_vm_guest(release, "hv") is None
    rule = stock.first_match(Event.parse("!system=ETHERNET subsystem=em0 type=IFATTACH"))
    assert rule is not None and rule.commands == (
        "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0",)
    assert not [m for rule in stock.rules for m in rule.matches if m.variable == "vm_guest"]


@pytest.mark.parametrize("release", WITH_VM_GUEST, ids=_name)
def test_only_the_ifattach_rule_matches_vm_guest(release):
    stock = load_tree(stock_tree(release.stock))
    users = [rule for rule in stock.rules if any(m.variable == "vm_guest" for m in rule.matches)]
    assert [(rule.file, rule.commands) for rule in users] == [
        ("/etc/devd/hyperv.conf", ("/usr/libexec/hyperv/hyperv_vfattach $subsystem 0",))]


def test_hyperv_rules_live_in_hyperv_conf(stock, release):
    rule = stock.first_match(event(release, "!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP"))
    assert rule.file == "/etc/devd/hyperv.conf"


def test_link_up_starts_dhclient_on_ethernet_and_wifi_only(stock, release):
    link_up = event(release, "!system=IFNET subsystem=hn0 type=LINK_UP")
    rule = stock.first_match(link_up, lambda name: "ethernet" if name == "hn0" else None)
    assert (rule.priority, rule.commands) == (0, ("service dhclient quietstart $subsystem",))
    wifi = stock.first_match(link_up, lambda _name: "802.11")
    assert wifi.commands == ("service dhclient quietstart $subsystem",)
    assert stock.first_match(link_up) is None  # no media: no dhclient
    link_down = event(release, "!system=IFNET subsystem=hn0 type=LINK_DOWN")
    assert stock.first_match(link_down, lambda _name: "ethernet") is None


def test_usb_capture_and_wlan_interfaces_are_not_configured(stock, release):
    for name in ("usbus0", "usbus12", "wlan0"):
        assert stock.first_match(event(release, f"!system=IFNET subsystem={name} type=ATTACH")) \
            is None
    assert stock.first_match(event(release, "!system=IFNET subsystem=wlan type=ATTACH")) \
        is not None  # the regex wants a unit number


def test_other_cdevs_fall_through(stock, release):
    line = "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_appvss_dev"
    assert stock.first_match(event(release, line)) is None


def test_dispatch_expands_the_vf_name_as_one_quoted_word(stock, release):
    ran = []
    Dispatcher(stock, run=lambda command: ran.append(command) or 0,
               vm_guest=devd_vm_guest(release, "hv")).dispatch(
        "!system=ETHERNET subsystem=mce0 type=IFATTACH"
    )
    assert ran == ["/usr/libexec/hyperv/hyperv_vfattach $'mce0' 0"]


def guest_tree(tmp_path: Path, release: releases.Release, local_rules: str) -> Path:
    root = tmp_path / "guest"
    shutil.copytree(stock_tree(release.stock) / "etc", root / "etc")
    local = root / "usr/local/etc/devd"
    local.mkdir(parents=True)
    (local / "hvbsd.conf").write_text(local_rules, encoding="utf-8")
    return root


def vss_rule(priority: int) -> str:
    return (f'notify {priority} {{\n\tmatch "system" "DEVFS";\n\tmatch "subsystem" "CDEV";\n'
            f'\tmatch "type" "CREATE";\n\tmatch "cdev" "hv_fsvss_dev";\n'
            f'\taction "service hvbsd_vssd quietstart";\n}};\n')


VSS_CREATE = "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_fsvss_dev"


def test_a_local_rule_above_the_stock_priority_wins(tmp_path, release):
    config = load_tree(guest_tree(tmp_path, release, vss_rule(12)))
    rule = config.first_match(event(release, VSS_CREATE))
    assert (rule.file, rule.commands) == (
        "/usr/local/etc/devd/hvbsd.conf", ("service hvbsd_vssd quietstart",)
    )


def test_a_local_rule_at_the_stock_priority_loses_to_the_earlier_file(tmp_path, release):
    config = load_tree(guest_tree(tmp_path, release, vss_rule(11)))
    assert config.first_match(event(release, VSS_CREATE)).file == "/etc/devd/hyperv.conf"
