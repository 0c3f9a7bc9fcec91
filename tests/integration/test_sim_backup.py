"""`hvbsd sim backup` end to end: the rendered configuration and the real daemon.

Each guest gets what `hvbsd render` produces plus the zipapp the role installs
(/usr/local/sbin/hvbsd_vssd). Starting the simulated host makes
/dev/hv_fsvss_dev appear; devd's installed rule runs `service hvbsd_vssd
quietstart`, and the rendered rc.d script starts the daemon with the flags of
/etc/rc.conf.d/hvbsd_vssd. Nothing in that configuration names the simulator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.sim import host
from hvbsd.sim.guest import Guest
from hvbsd.sim.kernel import Kernel
from hvbsd.sim.rendered import install_rendered
from hvbsd.vss.cli import archive_bytes

pytestmark = pytest.mark.slow

DAEMON = "/usr/local/sbin/hvbsd_vssd"
STATE_FILE = "/var/run/hvbsd_vssd.state"
PROBE = "/var/db/hvbsd-sim-backup.probe"


def deploy(guest: Guest, **variables: Any) -> None:
    """What the roles would install: the rendered files and the daemon."""
    install_rendered(guest, variables, boot=False)
    guest.exec(["sh", "-c", f"cat > {DAEMON} && chmod 0755 {DAEMON}"], input=archive_bytes(),
               check=True)


def add_hook(guest: Guest, name: str, body: str) -> None:
    path = f"/usr/local/etc/hvbsd/vss.d/{name}"
    script = 'mkdir -p "${1%/*}" && chmod 0755 "${1%/*}" && cat > "$1" && chmod 0755 "$1"'
    guest.exec(["sh", "-c", script, "sh", path],
               input=("#!/bin/sh\n" + body + "\n").encode(), check=True)


def backup(guest: Guest, env: dict[str, str], *options: str
           ) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd", "sim", "backup", guest.name, *options],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def statuses(result: dict[str, Any]) -> dict[str, Any]:
    return {step["step"]: step.get("status") for step in result["steps"]}


def daemon_state(guest: Guest) -> dict[str, Any]:
    return dict(json.loads(guest.path(STATE_FILE).read_text()))


def suspended(guest: Guest) -> list[list[int]]:
    return Kernel(guest.kernel_dir).snapshot().suspended


def daemon_pids(guest: Guest) -> list[str]:
    return guest.exec(["pgrep", "-f", DAEMON], text=True).stdout.split()


def test_backup_on_ufs_blocks_writes_during_the_snapshot_then_lets_them_flow(
        sim_guests, hvbsd_env):
    guest = sim_guests("b1", preset="ufs")
    deploy(guest)
    status, result = backup(guest, hvbsd_env)
    assert status == 0, result
    assert result["consistent"] is True
    assert statuses(result) == {"check": "HV_S_OK", "freeze": "HV_S_OK", "snapshot": None,
                                "thaw": "HV_S_OK"}
    snapshot = next(s for s in result["steps"] if s["step"] == "snapshot")
    assert sorted(snapshot["frozen"]) == ["/", "/mnt/resource"]
    assert result["writes"]["blocked_during_snapshot"] is True
    assert result["writes"]["flowed_after_thaw"] is True
    assert result["frozen_after"] == [] and suspended(guest) == []
    assert guest.path(PROBE).read_text().startswith("backup probe")
    state = daemon_state(guest)
    assert state["frozen"] is False and state["last"]["THAW"]["ok"] is True
    # the daemon came from the installed devd rule and the rendered rc.d script
    assert len(daemon_pids(guest)) == 1
    assert guest.exec(["service", "hvbsd_vssd", "status"], text=True).returncode == 0


def test_backup_on_zfs_syncs_the_pool_and_freezes_nothing(sim_guests, hvbsd_env):
    guest = sim_guests("b2", preset="zfs")
    deploy(guest)
    status, result = backup(guest, hvbsd_env)
    # the host saw success, but ZFS has no suspension: writes go on, the
    # snapshot is crash-consistent only, and the backup never says consistent
    assert status == 1, result
    assert result["vss_ok"] is True and result["consistent"] is False
    assert result["not_consistent_because"] == ["snapshot: a write flowed while it was taken"]
    snapshot = next(s for s in result["steps"] if s["step"] == "snapshot")
    assert snapshot["frozen"] == []
    assert result["writes"]["blocked_during_snapshot"] is False
    assert result["writes"]["flowed_during_snapshot"] is True
    assert Kernel(guest.kernel_dir).snapshot().pool_syncs.get("zroot", 0) >= 1


def test_backup_on_mixed_freezes_only_the_writable_ufs(sim_guests, hvbsd_env):
    guest = sim_guests("b3", preset="mixed")
    deploy(guest)
    status, result = backup(guest, hvbsd_env)
    assert status == 0, result
    snapshot = next(s for s in result["steps"] if s["step"] == "snapshot")
    assert snapshot["frozen"] == ["/"]  # /mnt/cdrom is read-only, /data ZFS, /tmp tmpfs
    assert result["writes"]["blocked_during_snapshot"] is True
    assert result["writes"]["flowed_after_thaw"] is True
    assert Kernel(guest.kernel_dir).snapshot().pool_syncs.get("tank", 0) >= 1
    assert suspended(guest) == []


def test_failing_hook_fails_the_freeze_and_leaves_nothing_frozen(sim_guests, hvbsd_env):
    guest = sim_guests("b4")
    deploy(guest)
    add_hook(guest, "10-ok", 'echo "$1" >> /var/db/hook-10.log')
    add_hook(guest, "20-fail", '[ "$1" = freeze ] && exit 1; exit 0')
    status, result = backup(guest, hvbsd_env)
    assert status == 1
    assert result["consistent"] is False
    assert statuses(result) == {"check": "HV_S_OK", "freeze": "HV_E_FAIL"}
    assert result["frozen_after"] == [] and suspended(guest) == []
    # the hook frozen before the failing one was thawed again
    assert guest.path("/var/db/hook-10.log").read_text().split() == ["freeze", "thaw"]
    assert daemon_state(guest)["frozen"] is False


def test_failing_hook_on_the_app_channel_never_reaches_the_filesystems(sim_guests, hvbsd_env):
    guest = sim_guests("b5")
    deploy(guest, hyperv_vss_app_device="/dev/hv_appvss_dev")
    add_hook(guest, "20-fail", '[ "$1" = freeze ] && exit 1; exit 0')
    status, result = backup(guest, hvbsd_env)
    assert status == 1 and statuses(result)["freeze"] == "HV_E_FAIL"
    notified = [(e["device"], e["op"]) for e in host.call(guest, {"op": "events"})["events"]
                if e["what"] == "notify"]
    # CHECK: app then fs; FREEZE: the app failed, the daemon's fs side was never asked
    assert notified == [("app", "CHECK"), ("fs", "CHECK"), ("app", "FREEZE")]
    assert suspended(guest) == []


def test_host_never_sending_thaw_is_thawed_by_the_daemons_watchdog(sim_guests, hvbsd_env):
    guest = sim_guests("b6")
    deploy(guest, hyperv_vss_freeze_timeout=1)
    status, result = backup(guest, hvbsd_env, "--no-thaw")
    assert status == 0, result  # the snapshot was taken while frozen
    assert statuses(result)["thaw"] == "not sent"
    assert result["writes"]["blocked_during_snapshot"] is True
    deadline = time.monotonic() + 5
    while suspended(guest) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert suspended(guest) == []
    watchdog = daemon_state(guest)["last"]["WATCHDOG"]
    assert watchdog["ok"] is True and "no THAW within 1 s" in watchdog["message"]
    # the daemon is still serving: the next backup is complete
    status, result = backup(guest, hvbsd_env)
    assert status == 0 and statuses(result)["thaw"] == "HV_S_OK"


def test_second_daemon_is_refused_as_busy(sim_guests):
    guest = sim_guests("b7")
    deploy(guest)
    host.start(guest)
    assert len(daemon_pids(guest)) == 1
    second = guest.exec([DAEMON, "-n", "--device", "/dev/hv_fsvss_dev", "--pidfile",
                         "/var/run/second.pid", "--state-file", "/var/run/second.state"],
                        text=True, timeout=30)
    assert second.returncode == 69
    assert "device busy" in second.stderr
    assert len(daemon_pids(guest)) == 1
    assert host.request(guest, "HOT_BACKUP", 5)["status"] == "HV_S_OK"


def test_host_stop_removes_the_devices_and_devd_stops_the_daemon(sim_guests, hvbsd_env):
    guest = sim_guests("b8")
    deploy(guest)
    started = subprocess.run([sys.executable, "-m", "hvbsd", "sim", "host", "start", "b8"],
                             env=hvbsd_env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert len(daemon_pids(guest)) == 1
    stopped = subprocess.run([sys.executable, "-m", "hvbsd", "sim", "host", "stop", "b8"],
                             env=hvbsd_env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert daemon_pids(guest) == []
    assert not guest.path("/dev/hv_fsvss_dev").exists()
    log = (guest.state_dir / "devd.log").read_text()
    assert "type=DESTROY cdev=hv_fsvss_dev" in log


def test_backup_of_a_guest_deployed_with_deploy_yml(sim_guests, sim_root, hvbsd_env, tmp_path):
    """The README's path: ansible-playbook deploy.yml, then hvbsd sim backup (~15 s)."""
    repo = Path(__file__).resolve().parents[2]
    guest = sim_guests("d1")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"d1": {
        "ansible_connection": "hvbsd_sim", "ansible_hvbsd_sim_state_dir": str(sim_root)}}}}))
    deployed = subprocess.run(
        [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory),
         str(repo / "deploy.yml")],
        env=dict(hvbsd_env, ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
        cwd=repo, capture_output=True, text=True, timeout=600, check=False)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    status, result = backup(guest, hvbsd_env)
    assert status == 0, result
    assert result["writes"] == {"probe": PROBE, "blocked_during_snapshot": True,
                                "flowed_during_snapshot": False, "flowed_after_thaw": True}
    assert len(daemon_pids(guest)) == 1


def _start_backup(guest: Guest, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hvbsd", "sim", "backup", guest.name, *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_frozen(guest: Guest, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not suspended(guest):
        assert time.monotonic() < deadline, "the first backup never froze the guest"
        time.sleep(0.05)


def test_a_second_backup_of_a_guest_in_one_is_refused_and_the_first_stays_consistent(
        sim_guests, hvbsd_env):
    guest = sim_guests("b9", preset="ufs")
    deploy(guest)
    host.start(guest)
    first = _start_backup(guest, hvbsd_env, "--snapshot-seconds", "4")
    try:
        _wait_frozen(guest)
        for _ in range(2):
            second = subprocess.run(
                [sys.executable, "-m", "hvbsd", "sim", "backup", guest.name],
                env=hvbsd_env, capture_output=True, text=True, timeout=60, check=False)
            assert second.returncode == 2
            assert second.stdout == ""
            assert second.stderr.strip() == (
                "hvbsd sim backup: guest 'b9' is in a backup already (another 'hvbsd sim"
                " backup' runs); try again when it has finished")
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    result = json.loads(out)
    assert result["consistent"] is True
    assert result["writes"]["flowed_during_snapshot"] is False
    assert suspended(guest) == []
    # and once it is over, the next backup runs
    status, result = backup(guest, hvbsd_env)
    assert status == 0 and result["consistent"] is True


def test_a_thaw_from_elsewhere_during_the_snapshot_makes_the_backup_not_consistent(
        sim_guests, hvbsd_env):
    guest = sim_guests("b10", preset="ufs")
    deploy(guest)
    host.start(guest)
    first = _start_backup(guest, hvbsd_env, "--snapshot-seconds", "4")
    try:
        _wait_frozen(guest)
        time.sleep(0.5)  # the probe write is blocked by now (it is tried at once)
        assert host.request(guest, "THAW", 10)["status"] == "HV_S_OK"
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    result = json.loads(out)
    assert first.returncode == 1, err
    assert result["consistent"] is False
    assert result["writes"]["flowed_during_snapshot"] is True
    assert "snapshot: a write flowed while it was taken" in result["not_consistent_because"]
