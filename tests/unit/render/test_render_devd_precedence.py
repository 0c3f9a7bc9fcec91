"""hvbsd's devd rules parse, and for every event they cover they are what devd runs.

On every supported release (hvbsd.releases) the stock rules are the
simulator's copies of that release's /etc/devd.conf and /etc/devd/hyperv.conf
(written from FreeBSD's sbin/devd files of its branch), plus FreeBSD's
hyperv.conf rules with and without the vm_guest match and an older generic
rule set; events carry the `vm_guest` that release's devd sets on Hyper-V
(hvbsd.devd.devd_vm_guest). Whichever order the files load in, hvbsd's rule
wins by priority.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hvbsd import releases
from hvbsd.devd import Event, devd_vm_guest, parse_text
from hvbsd.render import render_host
from hvbsd.sim.freebsd import stock_tree

ROOT = Path(__file__).resolve().parents[3]
HVBSD_FILE = "/usr/local/etc/devd/hvbsd.conf"

STOCK_HYPERV = """
notify 10 { match "system" "DEVFS"; match "subsystem" "CDEV"; match "type" "CREATE";
  match "cdev" "hv_kvp_dev"; action "/usr/sbin/hv_kvp_daemon"; };
notify 10 { match "system" "DEVFS"; match "subsystem" "CDEV"; match "type" "DESTROY";
  match "cdev" "hv_kvp_dev"; action "pkill -x hv_kvp_daemon"; };
notify 11 { match "system" "DEVFS"; match "subsystem" "CDEV"; match "type" "CREATE";
  match "cdev" "hv_fsvss_dev"; action "/usr/sbin/hv_vss_daemon"; };
notify 11 { match "system" "DEVFS"; match "subsystem" "CDEV"; match "type" "DESTROY";
  match "cdev" "hv_fsvss_dev"; action "pkill -x hv_vss_daemon"; };
notify 10 { match "system" "HYPERV_NIC_VF"; match "type" "VF_UP";
  action "/usr/libexec/hyperv/hyperv_vfup $subsystem"; };
notify 10 { match "system" "ETHERNET"; match "type" "IFATTACH";
  action "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"; };
notify 10 { match "system" "ETHERNET"; match "type" "IFATTACH"; match "vm_guest" "hv";
  action "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"; };
"""
STOCK_GENERIC = """
notify 0 { match "system" "IFNET"; match "type" "ATTACH"; match "subsystem" "!usbus[0-9]+";
  action "/etc/pccard_ether $subsystem start"; };
notify 0 { match "system" "IFNET"; match "type" "LINK_UP"; media-type "ethernet";
  action "service dhclient quietstart $subsystem"; };
"""
RELEASES = releases.supported()

EVENTS = {
    "vss-create": "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_fsvss_dev",
    "vss-destroy": "!system=DEVFS subsystem=CDEV type=DESTROY cdev=hv_fsvss_dev",
    "kvp-create": "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_kvp_dev",
    "kvp-destroy": "!system=DEVFS subsystem=CDEV type=DESTROY cdev=hv_kvp_dev",
    "ifattach": "!system=ETHERNET subsystem=mce0 type=IFATTACH",
    "vf-up": "!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP",
    "vf-ifnet-attach": "!system=IFNET subsystem=mce0 type=ATTACH",
    "mana-ifattach": "!system=ETHERNET subsystem=mana0 type=IFATTACH",
    "mana-ifnet-attach": "!system=IFNET subsystem=mana0 type=ATTACH",
    # the stock rule would start dhclient on a lagg port (ifconfig_DEFAULT="SYNCDHCP")
    "vf-link-up": "!system=IFNET subsystem=mce0 type=LINK_UP",
    "mana-link-up": "!system=IFNET subsystem=mana0 type=LINK_UP",
}
LAGG_ONLY_EVENTS = {
    "hn-link-up": "!system=IFNET subsystem=hn0 type=LINK_UP",
    "lagg-link-up": "!system=IFNET subsystem=lagg0 type=LINK_UP",
    # the stock rule (pccard_ether, netif quietstart) would leave the lagg's IPv6 disabled
    "lagg-ifnet-attach": "!system=IFNET subsystem=lagg0 type=ATTACH",
}


def _stock_files(release: releases.Release) -> list[tuple[str, str]]:
    files = [("/etc/devd.conf", STOCK_GENERIC), ("/etc/devd/hyperv.conf", STOCK_HYPERV)]
    for relative in ("devd.conf", "devd/hyperv.conf"):
        path = stock_tree(release.stock) / "etc" / relative
        files.append((f"sim-{release.name}:/etc/{relative}", path.read_text()))
    return files


def _event(release: releases.Release, line: str) -> Event:
    """`line` as the devd of `release` holds it on Hyper-V (its vm_guest, if it sets one)."""
    return Event.parse(line, vm_guest=devd_vm_guest(release, "hv"))


def _config(hvbsd_text: str, hvbsd_first: bool, release: releases.Release = RELEASES[-1]):
    files = [*_stock_files(release), (HVBSD_FILE, hvbsd_text)]
    if hvbsd_first:
        files.insert(0, files.pop())
    config = parse_text(files[0][1], files[0][0])
    for name, text in files[1:]:
        config.extend(text, name)
    return config


def _ethernet(interface: str) -> str:
    return "ethernet"


CHOICES = list(itertools.product(["lagg", "transparent"], ["hvbsd", "stock", "none"],
                                 ["hvbsd", "stock", "off"]))


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.name)
@pytest.mark.parametrize(("mode", "vss", "kvp"), CHOICES)
@pytest.mark.parametrize("hvbsd_first", [False, True], ids=["stock-first", "hvbsd-first"])
def test_hvbsd_rule_runs_for_every_event_it_covers(mode, vss, kvp, hvbsd_first, release):
    variables = {"hyperv_guest_mode": mode, "hyperv_guest_vss_daemon": vss,
                 "hyperv_guest_kvp": kvp,
                 "hyperv_guest_interfaces": [{"name": "hn0"}]}
    text = render_host(variables)[HVBSD_FILE].content.decode()
    config = _config(text, hvbsd_first, release)
    events = dict(EVENTS, **(LAGG_ONLY_EVENTS if mode == "lagg" else {}))
    for label, line in events.items():
        rule = config.first_match(_event(release, line), _ethernet)
        assert rule is not None and rule.file == HVBSD_FILE, (
            f"{release.name} {label}: devd would run "
            f"{rule.file if rule else None}:{rule.line if rule else ''}")


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.name)
@pytest.mark.parametrize("mode", ["lagg", "transparent"])
def test_without_hvbsd_the_releases_own_stock_rule_would_run(release, mode):
    """The precedence test can fail: the same events without hvbsd's file reach the stock rules."""
    files = [(f"/etc/{relative}", (stock_tree(release.stock) / "etc" / relative).read_text())
             for relative in ("devd.conf", "devd/hyperv.conf")]
    config = parse_text(files[0][1], files[0][0])
    config.extend(files[1][1], files[1][0])
    ifattach = config.first_match(_event(release, EVENTS["ifattach"]), _ethernet)
    assert ifattach is not None and ifattach.file == "/etc/devd/hyperv.conf"
    vss = config.first_match(_event(release, EVENTS["vss-create"]), _ethernet)
    assert vss is not None and vss.commands == ("/usr/sbin/hv_vss_daemon",)
    link_up = config.first_match(_event(release, LAGG_ONLY_EVENTS["hn-link-up"]), _ethernet)
    assert link_up is not None and link_up.file == "/etc/devd.conf"
    # with hvbsd's file, in either mode, none of these is the stock rule any more
    text = render_host({"hyperv_guest_mode": mode,
                        "hyperv_guest_interfaces": [{"name": "hn0"}]})[HVBSD_FILE]
    config.extend(text.content.decode(), HVBSD_FILE)
    for line in (EVENTS["ifattach"], EVENTS["vss-create"]):
        assert config.first_match(_event(release, line), _ethernet).file == HVBSD_FILE


@pytest.mark.parametrize(("mode", "vss", "kvp"), CHOICES)
def test_hvbsd_rules_run_what_the_choice_says(mode, vss, kvp):
    variables = {"hyperv_guest_mode": mode, "hyperv_guest_vss_daemon": vss,
                 "hyperv_guest_kvp": kvp}
    config = _config(render_host(variables)[HVBSD_FILE].content.decode(), False)

    def commands(label):
        return config.first_match(Event.parse(EVENTS[label]), _ethernet).commands

    assert commands("vss-create") == {
        "hvbsd": ("/usr/sbin/service hvbsd_vssd quietstart",),
        "stock": ("/usr/sbin/hv_vss_daemon",), "none": ()}[vss]
    assert commands("vss-destroy") == {
        "hvbsd": ("/usr/sbin/service hvbsd_vssd onestop",),
        "stock": ("/bin/pkill -x hv_vss_daemon",), "none": ()}[vss]
    assert commands("kvp-create") == {
        "hvbsd": ("/usr/sbin/service hvbsd_kvpd quietstart",),
        "stock": ("/usr/sbin/hv_kvp_daemon",), "off": ()}[kvp]
    assert commands("kvp-destroy") == {
        "hvbsd": ("/usr/sbin/service hvbsd_kvpd onestop",),
        "stock": ("/bin/pkill -x hv_kvp_daemon",), "off": ()}[kvp]
    assert commands("ifattach") == (
        ("/usr/local/libexec/hvbsd/hyperv_vfattach $subsystem 0",) if mode == "lagg" else ())
    assert commands("vf-up") == (
        ("/usr/local/libexec/hvbsd/hyperv_vfup $subsystem",) if mode == "lagg" else ())
    assert commands("vf-ifnet-attach") == ()


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.name)
def test_hvbsd_rules_leave_other_interfaces_to_the_stock_rules(release):
    variables = {"hyperv_guest_mode": "lagg", "hyperv_guest_interfaces": [{"name": "hn0"}]}
    config = _config(render_host(variables)[HVBSD_FILE].content.decode(), True, release)
    tap = config.first_match(_event(release, "!system=IFNET subsystem=tap0 type=ATTACH"),
                             _ethernet)
    assert tap is not None and tap.file != HVBSD_FILE
    em = config.first_match(_event(release, "!system=IFNET subsystem=em0 type=LINK_UP"),
                            _ethernet)
    assert em is not None and em.file != HVBSD_FILE


def test_rendered_rules_use_plain_dollar_variables_and_no_vm_guest(example, load_example):
    text = render_host(load_example(example))[HVBSD_FILE].content.decode()
    assert "${" not in text
    assert "vm_guest" not in text.split("#")[0]
    assert not [line for line in text.splitlines()
                if "vm_guest" in line and not line.lstrip().startswith("#")]
    parse_text(text, HVBSD_FILE)


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.name)
@pytest.mark.parametrize("hvbsd_first", [False, True], ids=["stock-first", "hvbsd-first"])
@pytest.mark.parametrize("name", ["hn0;reboot", "$(reboot)", "mce0 `reboot`", "HN0\nreboot", ""])
def test_hostile_names_stop_at_hvbsds_rule_that_runs_nothing(hvbsd_first, name, release):
    variables = {"hyperv_guest_mode": "lagg", "hyperv_guest_interfaces": [{"name": "hn0"}]}
    config = _config(render_host(variables)[HVBSD_FILE].content.decode(), hvbsd_first, release)
    vm_guest = devd_vm_guest(release, "hv")
    for system, kind in (("ETHERNET", "IFATTACH"), ("HYPERV_NIC_VF", "VF_UP")):
        rule = config.first_match(Event.notify(system, name, kind).with_vm_guest(vm_guest),
                                  _ethernet)
        assert rule is not None and rule.file == HVBSD_FILE and rule.actions == (), (
            f"{system} {kind} {name!r}: devd would run {rule}")
