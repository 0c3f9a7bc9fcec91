"""What hvbsd configured is in effect on the booted host: loader, rc.conf, the VSS and
KVP daemons."""

from __future__ import annotations

import re

import pytest

LOADER = "/boot/loader.conf.d/hvbsd.conf"
RC_CONF = "/etc/rc.conf"
SETTING = re.compile(r'^([A-Za-z_][A-Za-z0-9_.]*)=(?:"([^"]*)"|(\S*))\s*$')

# Tier 2: read-only, safe on any production guest.
pytestmark = pytest.mark.hvbsd_settings


def settings(text: str) -> dict[str, str]:
    """name -> value of the ``name="value"`` lines of a loader.conf or rc.conf text."""
    found = {}
    for line in text.splitlines():
        match = SETTING.match(line.strip())
        if match:
            quoted, bare = match.group(2), match.group(3)
            found[match.group(1)] = quoted if quoted is not None else bare
    return found


def wants_vss_daemon(variables: dict) -> bool:
    return bool(variables.get("hyperv_vss_enable", True)) and \
        variables.get("hyperv_guest_vss_daemon", "hvbsd") == "hvbsd"


@pytest.mark.usefixtures("live")
def test_loader_tunables_are_in_effect_after_the_reboot(host, rendered):
    if LOADER not in rendered:
        pytest.skip("this configuration sets no loader tunables")
    wanted = settings(rendered[LOADER].content.decode())
    assert wanted, f"{LOADER} as rendered sets nothing"
    has_kldstat = host.run("command -v kldstat").rc == 0
    wrong = []
    for name, value in sorted(wanted.items()):
        if name.endswith("_load"):
            # a module to load, not a sysctl; the simulated kernel has no modules
            module = name[: -len("_load")]
            if value.upper() == "YES" and has_kldstat and \
                    host.run("kldstat -q -m %s", module).rc != 0:
                wrong.append(f"{name}: module {module} is not loaded")
            continue
        now = host.run("sysctl -n %s", name)
        if now.rc != 0:
            wrong.append(f"{name}: sysctl failed: {now.stderr.strip()}")
        elif now.stdout.strip() != value:
            wrong.append(f"{name} is {now.stdout.strip()!r}, {LOADER} sets {value!r}"
                         " (not rebooted since the deploy?)")
    assert wrong == [], "; ".join(wrong)


@pytest.mark.usefixtures("live")
def test_rc_conf_settings_are_what_rc_sees(host, rendered):
    wanted = settings(rendered[RC_CONF].file_bytes().decode())
    assert wanted, "the hvbsd managed block of rc.conf sets nothing"
    wrong = []
    for name, value in sorted(wanted.items()):
        now = host.run("sysrc -n %s", name)
        if now.rc != 0 or now.stdout.rstrip("\n") != value:
            wrong.append(f"{name}: rc sees {now.stdout.strip()!r} (exit {now.rc}), hvbsd sets"
                         f" {value!r}")
    assert wrong == [], "; ".join(wrong)


@pytest.mark.usefixtures("live")
def test_vss_daemon_is_enabled_and_running(host, hvbsd_variables):
    if not wants_vss_daemon(hvbsd_variables):
        pytest.skip("this configuration does not run hvbsd_vssd")
    assert host.service("hvbsd_vssd").is_enabled, "hvbsd_vssd is not enabled in rc.conf"
    status = host.run("service hvbsd_vssd onestatus")
    assert status.rc == 0, f"service hvbsd_vssd onestatus: {status.stdout.strip()}"


@pytest.mark.usefixtures("live")
def test_vss_daemon_reports_thawed(host, hvbsd_variables):
    if not wants_vss_daemon(hvbsd_variables):
        pytest.skip("this configuration does not run hvbsd_vssd")
    status = host.run("/usr/local/sbin/hvbsd_vssd --status")
    assert status.rc == 0, f"hvbsd_vssd --status (exit {status.rc}): {status.stdout.strip()}"
    assert "thawed" in status.stdout


@pytest.mark.usefixtures("live")
def test_kvp_daemon_is_enabled_and_answers_where_the_host_offers_kvp(host, hvbsd_variables):
    if hvbsd_variables.get("hyperv_guest_kvp", "hvbsd") != "hvbsd":
        pytest.skip("this configuration does not run hvbsd_kvpd")
    if not host.file("/dev/hv_kvp_dev").exists:
        pytest.skip("no /dev/hv_kvp_dev: the host offers no KVP service (devd starts"
                    " hvbsd_kvpd when it appears)")
    assert host.service("hvbsd_kvpd").is_enabled, "hvbsd_kvpd is not enabled"
    status = host.run("/usr/local/sbin/hvbsd_kvpd --status")
    assert status.rc == 0, f"hvbsd_kvpd --status (exit {status.rc}): {status.stdout.strip()}"
    assert "lookup: hvbsd" in status.stdout, status.stdout
