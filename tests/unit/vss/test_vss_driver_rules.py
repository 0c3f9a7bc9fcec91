"""The real daemon against the simulated hv_vss driver: issue 11's cases and kill -9 at
every step of FREEZE and THAW.

The driver (hvbsd.sim.hyperv_vss.VssDriver) runs in this test's thread: ``host`` sends
one host request and pumps the driver's loop until the host has its answer, so each
test asserts what the host was told (and why, from the driver's own events), what is
left suspended (the filesystem service) and which hooks got thaw (the hooks' journal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, List, Optional

import pytest

from hvbsd.sim.hyperv_vss import HOST_OPS, HV_E_FAIL, HV_S_OK, Loop, VssDriver
from hvbsd.vss.mounts import Mount
from hvbsd.vss.platform import build_statfs, parse_statfs
from hvbsd.vss.simwire import SimFsServer

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")


class Rig:
    """The driver of one guest, pumped from the test's thread."""

    def __init__(self, directory: Path, timeout: float = 15.0) -> None:
        self.loop = Loop()
        self.driver = VssDriver(self.loop, directory, timeout, in_guest=lambda pid: True)
        self.driver.attach()

    def pump(self, until: Callable[[], Any] = lambda: False, seconds: float = 5.0) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            result = until()
            if result or time.monotonic() >= deadline:
                return result
            self.loop.run_once(0.01)

    def host(self, name: str, seconds: float = 20.0) -> Optional[int]:
        """Send one host request; the status the host got (None: no answer)."""
        got: List[int] = []
        self.driver.host_request(HOST_OPS[name], lambda status, extra: got.append(status))
        self.pump(lambda: got, seconds)
        return got[0] if got else None

    def replies(self) -> List[str]:
        return [str(e.get("why")) for e in self.driver.events if e["what"] == "reply"]

    def late(self) -> List[dict]:
        return [e for e in self.driver.events if e["what"] == "late"]

    def opener_pid(self, role: str = "fs") -> Optional[int]:
        task = self.driver.devices[role].proc_task
        return None if task is None else task[0]

    def wait_open(self, role: str = "fs") -> None:
        assert self.pump(lambda: self.driver.devices[role].opener is not None, 10.0), \
            f"the daemon never opened the {role} device"

    def close(self) -> None:
        self.driver.detach(kill=False)
        self.loop.close()


@pytest.fixture
def rig(lab):
    made = Rig(Path(lab.kernel_path).parent)
    yield made
    made.close()


def start(lab, rig, daemons, *extra, app=False, foreground=True):
    if app:
        extra = (*extra, "--app-device", str(rig.driver.device_path("app")))
    daemon = daemons(lab, *extra, device=str(rig.driver.device_path("fs")),
                     foreground=foreground)
    rig.wait_open()
    if app:
        rig.wait_open("app")
    return daemon


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def status_code(lab) -> int:
    return subprocess.run(
        [sys.executable, "-m", "hvbsd.vss", "--status", "--state-file", str(lab.state_file)],
        capture_output=True, timeout=30, env=dict(os.environ, PYTHONPATH=SRC)).returncode


def gone(pid: int) -> bool:
    """No such process, or only its zombie is left."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def every_frozen_hook_thawed_last(journal: List[str]) -> bool:
    last = {}
    for line in journal:
        name, action = line.split()[:2]
        last[name] = action
    return all(action == "thaw" for action in last.values())


# issue 11, case 1: the budget


def test_four_slow_hooks_at_the_defaults_fail_the_host_before_the_driver_times_out(
        lab, rig, fs_factory, daemons):
    for name in ("10-a", "20-b", "30-c", "40-d"):
        lab.write_hook(name, '[ "$1" = freeze ] && sleep 4; exit 0')
    service = fs_factory("two_ufs")
    start(lab, rig, daemons)
    assert rig.host("FREEZE") == HV_E_FAIL
    # the daemon's own FAIL, not the driver's timer: no answer was dropped as late
    assert rig.replies() == ["fs failed"] and rig.late() == []
    assert service.suspended == frozenset() and service.server.events == []
    assert wait_for(lambda: every_frozen_hook_thawed_last(lab.journal()))
    assert "request budget spent" in lab.log_text() or "timeout" in lab.log_text()


def test_budget_spent_before_suspending_answers_fail_and_suspends_nothing(
        lab, rig, fs_factory, daemons):
    lab.write_hook("10-slow", '[ "$1" = freeze ] && sleep 0.6; exit 0')
    lab.write_hook("20-slow", '[ "$1" = freeze ] && sleep 0.6; exit 0')
    service = fs_factory("two_ufs")
    start(lab, rig, daemons, "--budget", "1")
    assert rig.host("FREEZE") == HV_E_FAIL
    assert rig.replies() == ["fs failed"]
    assert service.suspended == frozenset()
    assert ("suspend",) not in [e[:1] for e in service.server.events]
    assert wait_for(lambda: every_frozen_hook_thawed_last(lab.journal()))


def test_a_thaw_after_a_late_freeze_leaves_nothing_suspended(lab, rig, fs_factory, daemons):
    rig.driver.timeout = 1.0  # a host that gives up sooner than the daemon's budget
    lab.write_hook("10-slow", '[ "$1" = freeze ] && sleep 1.5; exit 0')
    service = fs_factory("two_ufs")
    start(lab, rig, daemons, "--budget", "5")
    assert rig.host("FREEZE") == HV_E_FAIL
    assert rig.replies()[-1].startswith("timed out")
    assert rig.pump(lambda: rig.late(), 5.0)  # the daemon's late success was dropped
    assert rig.host("THAW") == HV_S_OK
    assert service.suspended == frozenset()
    assert wait_for(lambda: lab.journal() == ["10-slow freeze", "10-slow thaw"])


@pytest.mark.parametrize("value", ["15", "16", "0", "-1", "nan", "soon"])
def test_a_budget_the_driver_would_not_wait_for_is_refused(value):
    result = subprocess.run([sys.executable, "-m", "hvbsd.vss", "--budget", value],
                            capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, PYTHONPATH=SRC))
    assert result.returncode == 2 and "--budget" in result.stderr
    assert "Traceback" not in result.stderr


# issue 11, case 2 and kill -9 at every step


def restart_and_recover(lab, rig, daemons):
    # the driver sees the dead daemon's close, and its timer ends what was in flight
    assert rig.pump(lambda: rig.driver.devices["fs"].opener is None and not rig.driver.live,
                    20.0)
    restarted = start(lab, rig, daemons)
    assert rig.host("HOT_BACKUP") == HV_S_OK  # serving again
    return restarted


def kill(daemon):
    daemon.signal(signal.SIGKILL)
    daemon.wait()


def test_kill_while_a_freeze_hook_runs_thaws_it_after_restart_and_its_freeze_never_ends(
        lab, rig, fs_factory, daemons):
    done = lab.dir / "freeze-finished"
    pid_file = lab.dir / "hook-pid"
    lab.write_hook("10-db", f'[ "$1" = freeze ] && {{ echo $$ > "{pid_file}"; sleep 60;'
                   f' touch "{done}"; }}; exit 0')
    service = fs_factory("ufs_only")
    daemon = start(lab, rig, daemons)
    rig.driver.timeout = 3.0  # so the request the kill leaves in flight ends soon
    rig.driver.host_request(HOST_OPS["FREEZE"], lambda status, extra: None)
    assert rig.pump(lambda: lab.journal() == ["10-db freeze"], 10.0)
    assert wait_for(lambda: lab.state()["hooks"] == ["10-db"]
                    and (lab.state().get("running") or {}).get("pid"))
    kill(daemon)
    assert status_code(lab) == 1  # the journal says a hook may be frozen
    orphan = int(pid_file.read_text())
    assert gone(orphan) is False  # its freeze outlived the daemon
    restart_and_recover(lab, rig, daemons)
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    assert gone(orphan)  # killed before the thaw ran: its freeze can never finish after it
    assert not done.exists()
    assert service.suspended == frozenset() and status_code(lab) == 0


def test_kill_between_two_suspends_resumes_both_and_thaws_the_hooks(
        lab, rig, fs_factory, daemons, m):
    lab.write_hook("10-db")
    service = fs_factory("two_ufs")
    daemon = start(lab, rig, daemons)
    # the moment the first filesystem is suspended, the daemon dies
    service.server.on_change = lambda fsid, on: (
        service.changes.append((fsid, on)),
        on and os.kill(daemon.proc.pid, signal.SIGKILL))
    rig.driver.timeout = 3.0
    rig.driver.host_request(HOST_OPS["FREEZE"], lambda status, extra: None)
    assert rig.pump(lambda: daemon.proc.poll() is not None, 10.0)
    assert wait_for(lambda: service.suspended == frozenset())
    assert [on for _, on in service.changes].count(True) == 1
    service.server.on_change = None
    restart_and_recover(lab, rig, daemons)
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    assert status_code(lab) == 0


def test_kill_after_the_last_suspend_resumes_and_thaws_the_hooks(
        lab, rig, fs_factory, daemons):
    lab.write_hook("10-a")
    lab.write_hook("20-b")
    service = fs_factory("two_ufs")
    daemon = start(lab, rig, daemons)
    assert rig.host("FREEZE") == HV_S_OK
    assert len(service.suspended) == 2
    kill(daemon)
    assert wait_for(lambda: service.suspended == frozenset())
    restart_and_recover(lab, rig, daemons)
    assert lab.journal() == ["10-a freeze", "20-b freeze", "20-b thaw", "10-a thaw"]


def test_kill_during_a_thaw_hook_thaws_it_again_and_the_rest(lab, rig, fs_factory, daemons):
    lab.write_hook("10-a")
    lab.write_hook("20-b", '[ "$1" = thaw ] && sleep 30; exit 0')
    service = fs_factory("two_ufs")
    daemon = start(lab, rig, daemons)
    assert rig.host("FREEZE") == HV_S_OK
    rig.driver.timeout = 3.0
    rig.driver.host_request(HOST_OPS["THAW"], lambda status, extra: None)
    assert rig.pump(lambda: lab.journal()[-1:] == ["20-b thaw"], 10.0)
    assert service.suspended == frozenset()  # filesystems first
    kill(daemon)
    lab.write_hook("20-b")  # the application answers quickly now
    restart_and_recover(lab, rig, daemons)
    assert lab.journal() == ["10-a freeze", "20-b freeze", "20-b thaw", "20-b thaw",
                             "10-a thaw"]
    assert status_code(lab) == 0


# issue 11, case 3: daemonize first, then open


def test_the_process_the_driver_records_is_the_daemon_and_detach_stops_it(
        lab, rig, fs_factory, daemons):
    fs_factory("ufs_only")
    launcher = daemons(lab, device=str(rig.driver.device_path("fs")), foreground=False)
    rig.pump(lambda: launcher.proc.poll() is not None, 10.0)
    assert launcher.wait() == 0
    rig.wait_open()
    pid = int(lab.pidfile.read_text())
    assert rig.opener_pid() == pid != launcher.proc.pid
    rig.driver.detach(kill=True)
    assert wait_for(lambda: gone(pid))


def test_a_busy_device_still_gives_the_launcher_status_69(lab, rig, fs_factory, daemons):
    fs_factory("ufs_only")
    start(lab, rig, daemons)
    second = daemons(lab, device=str(rig.driver.device_path("fs")), foreground=False)
    rig.pump(lambda: second.proc.poll() is not None, 10.0)
    assert second.wait() == 69 and "device busy" in second.stderr()


# issue 11, case 4: app channel


def test_a_failed_filesystem_freeze_thaws_the_app_hooks_at_once(
        lab, rig, fs_factory, daemons, m):
    lab.write_hook("10-db")
    service = fs_factory("two_ufs")
    service.server.fail_next_suspend(m.ROOT_UFS.fsid, "EIO")
    start(lab, rig, daemons, app=True)
    assert rig.host("FREEZE") == HV_E_FAIL
    assert rig.replies() == ["fs failed"]
    # no THAW comes from the driver; the daemon thaws the app side itself
    assert wait_for(lambda: lab.journal() == ["10-db freeze", "10-db thaw"])
    assert service.suspended == frozenset() and status_code(lab) == 0


def test_the_app_channel_keeps_the_budget_too(lab, rig, fs_factory, daemons):
    lab.write_hook("10-slow", '[ "$1" = freeze ] && sleep 30; exit 0')
    service = fs_factory("two_ufs")
    start(lab, rig, daemons, "--budget", "1", app=True)
    assert rig.host("FREEZE") == HV_E_FAIL
    assert rig.replies() == ["app failed"] and rig.late() == []
    assert service.suspended == frozenset()
    assert wait_for(lambda: lab.journal() == ["10-slow freeze", "10-slow thaw"])


# issue 11, case 5: the daemon's own writable files on a filesystem it suspends


def test_stderr_on_a_filesystem_it_suspends_is_warned_about_at_start(
        lab, rig, fs_factory, daemons):
    lab_ufs = Mount((0x77, 0x78), "ufs", str(lab.dir), "/dev/da2p1")
    fs_factory([Mount((0x81, 0x82), "zfs", "/", "zroot/ROOT/default"), lab_ufs])
    start(lab, rig, daemons)  # -n, stderr is a file in lab.dir
    assert wait_for(lambda: "standard error" in lab.log_text())
    text = lab.log_text()
    assert f"open for writing on {lab.dir}" in text and "EDEADLK" in text
    assert f"--exclude {lab.dir}" in text


def test_no_warning_when_its_files_are_elsewhere(lab, rig, fs_factory, daemons):
    fs_factory([Mount((0x81, 0x82), "zfs", "/", "zroot/ROOT/default"),
                Mount((0x77, 0x78), "ufs", "/elsewhere", "/dev/da2p1")])
    start(lab, rig, daemons)
    assert rig.host("HOT_BACKUP") == HV_S_OK
    assert "open for writing" not in lab.log_text()


# issue 11, case 6: an unparseable mount entry


def test_an_unusable_mount_entry_is_skipped_and_logged_and_the_daemon_serves(
        lab, rig, fs_factory, daemons, m):
    bad = types.SimpleNamespace(fsid=(0x99, 0x99), fstype="", mount_on="relative/mnt",
                                mount_from="/dev/x", read_only=False)
    service = fs_factory([m.ROOT_UFS, bad, m.VAR_UFS])
    daemon = start(lab, rig, daemons)
    assert rig.host("HOT_BACKUP") == HV_S_OK
    assert rig.host("FREEZE") == HV_S_OK
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert rig.host("THAW") == HV_S_OK
    assert wait_for(lambda: "mount entry 1 skipped" in lab.log_text())
    assert daemon.running


def test_parse_statfs_skips_an_entry_with_a_relative_mount_point_or_no_type():
    good = build_statfs(Mount((1, 2), "ufs", "/", "/dev/da0p2"))
    relative = bytearray(build_statfs(Mount((3, 4), "ufs", "/x", "/dev/da0p3")))
    relative[1320:1324] = b"x\0\0\0"  # f_mntonname
    untyped = bytearray(build_statfs(Mount((5, 6), "ufs", "/y", "/dev/da0p4")))
    untyped[280:296] = bytes(16)  # f_fstypename
    skipped: List[str] = []
    mounts = parse_statfs(good + bytes(relative) + bytes(untyped), 3, skipped)
    assert [mount.mount_on for mount in mounts] == ["/"]
    assert len(skipped) == 2 and "entry 1" in skipped[0] and "entry 2" in skipped[1]


def test_a_zpool_sync_that_hangs_is_cut_at_the_budget(lab, rig, daemons, m):
    class HangingZpool(SimFsServer):
        def _zpool_sync(self, pools):
            time.sleep(4)
            return super()._zpool_sync(pools)

    server = HangingZpool(lab.fs_path, [m.ZROOT, m.TANK])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        daemon = start(lab, rig, daemons, "--budget", "1")
        assert rig.host("FREEZE") == HV_E_FAIL
        assert rig.replies() == ["fs failed"] and rig.late() == []
        assert wait_for(lambda: "zpool_sync" in lab.log_text())
        assert daemon.running
    finally:
        server.shutdown()
        thread.join(10)
        server.close()


def test_sigterm_while_a_freeze_hook_runs_is_served_once_it_is_done_and_thaws_it(
        lab, rig, fs_factory, daemons):
    lab.write_hook("10-db", '[ "$1" = freeze ] && sleep 1; exit 0')
    service = fs_factory("two_ufs")
    daemon = start(lab, rig, daemons)
    answers: List[int] = []
    rig.driver.host_request(HOST_OPS["FREEZE"], lambda status, extra: answers.append(status))
    assert rig.pump(lambda: lab.journal() == ["10-db freeze"], 10.0)
    daemon.signal(signal.SIGTERM)
    assert rig.pump(lambda: daemon.proc.poll() is not None, 15.0)
    assert daemon.wait() == 0
    assert answers == [HV_S_OK]  # the request under way was still answered
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    assert service.suspended == frozenset() and status_code(lab) == 0
