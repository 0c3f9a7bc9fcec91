"""The real daemon process against a fake VSS kernel and the reference filesystem service.

Each test asserts what the host was told, that nothing is left frozen, and
whether the daemon is still serving.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from hvbsd.vss import protocol
from hvbsd.vss.protocol import Op, Status


def wait_for(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def status_of(lab):
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd.vss", "--status", "--state-file", str(lab.state_file)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(lab_src())))
    return result.returncode, result.stdout


def lab_src():
    return os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")


def serving(kernel):
    return kernel.request(Op.CHECK).status == Status.SUCCESS


@pytest.fixture
def started(lab, kernel, fs_factory, daemons):
    """Start a daemon on a table: started('ufs_only', '--zfs', 'veto')."""
    def start(table, *extra):
        service = fs_factory(table)
        daemon = daemons(lab, *extra)
        kernel.wait_connected()
        return service, daemon
    return start


def test_backup_cycle_freezes_reports_status_and_thaws(lab, kernel, started, m):
    service, daemon = started("ufs_only")
    assert kernel.request(Op.CHECK).status == Status.SUCCESS
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    code, text = status_of(lab)
    assert code == 1 and "filesystems: /var /" in text
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert service.suspended == frozenset()
    # the state file follows the answer within moments
    assert wait_for(lambda: "last THAW: ok" in status_of(lab)[1])
    code, text = status_of(lab)
    assert code == 0 and "last FREEZE: ok" in text
    assert daemon.running
    assert "modules imported while frozen" not in lab.log_text()


def test_state_file_is_not_written_while_filesystems_are_frozen(lab, kernel, started):
    _service, _ = started("ufs_only")
    kernel.request(Op.FREEZE)
    before = (lab.state_file.stat().st_ino, lab.state_file.read_text())
    kernel.request(Op.CHECK)
    assert (lab.state_file.stat().st_ino, lab.state_file.read_text()) == before
    assert "FREEZE" not in lab.state()["last"]  # recorded in memory only
    assert lab.log_text().count("CHECK") == 0  # held in memory while frozen
    kernel.request(Op.THAW)
    assert wait_for(lambda: set(lab.state()["last"]) == {"CHECK", "FREEZE", "THAW"})
    assert lab.state()["frozen"] is False
    assert "CHECK: ok" in lab.log_text()


def test_zfs_guest_freezes_by_zpool_sync_where_the_stock_daemon_vetoes(lab, kernel, started):
    service, _ = started("zfs_only")
    assert kernel.request(Op.CHECK).status == Status.SUCCESS
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert ("zpool_sync", ("zroot", "tank")) in service.server.events
    assert kernel.request(Op.THAW).status == Status.SUCCESS


def test_zfs_veto_policy_tells_the_host_fail_and_keeps_serving(lab, kernel, started):
    service, daemon = started("mixed", "--zfs", "veto")
    assert kernel.request(Op.CHECK).status == Status.FAIL
    assert kernel.request(Op.FREEZE).status == Status.FAIL
    assert service.suspended == frozenset()
    assert "/data is writable zfs (--zfs veto)" in lab.log_text()
    assert daemon.running


def test_exclude_option_leaves_the_mount_point_alone(lab, kernel, started, m):
    service, _ = started("three_ufs", "--exclude", "/usr/local", "--exclude", "/nope*")
    kernel.request(Op.FREEZE)
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    kernel.request(Op.THAW)


def test_suspension_failing_on_second_of_three_answers_fail_and_leaves_nothing_frozen(
        lab, kernel, started, m):
    service, daemon = started("three_ufs")
    service.server.fail_next_suspend(m.VAR_UFS.fsid, "EDEADLK")
    assert kernel.request(Op.FREEZE).status == Status.FAIL
    assert service.suspended == frozenset()
    assert ("resume", m.LOCAL_UFS.fsid) in service.server.events
    assert "EDEADLK" in lab.log_text()
    assert serving(kernel) and daemon.running


def test_failing_freeze_hook_answers_fail_and_thaws_it(lab, kernel, started):
    lab.write_hook("10-db", '[ "$1" = freeze ] && exit 1; exit 0')
    service, _daemon = started("ufs_only")
    assert kernel.request(Op.FREEZE).status == Status.FAIL
    # the hook's thaw runs right after the answer, outside the request's budget
    assert wait_for(lambda: lab.journal() == ["10-db freeze", "10-db thaw"])
    assert service.server.events == []
    assert serving(kernel)


def test_hook_hanging_past_hook_timeout_answers_fail_within_the_kernel_budget(
        lab, kernel, started):
    lab.write_hook("10-hang", '[ "$1" = freeze ] && sleep 30; exit 0')
    service, _ = started("ufs_only", "--hook-timeout", "0.5")
    begun = time.monotonic()
    assert kernel.request(Op.FREEZE).status == Status.FAIL
    assert time.monotonic() - begun < 3
    assert service.suspended == frozenset()
    assert wait_for(lambda: lab.journal() == ["10-hang freeze", "10-hang thaw"])


def test_sigterm_while_frozen_thaws_then_exits_zero(lab, kernel, started):
    lab.write_hook("10-db")
    service, daemon = started("ufs_only")
    kernel.request(Op.FREEZE)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert service.suspended == frozenset()
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    assert status_of(lab)[0] == 0
    assert not lab.pidfile.exists()
    assert "SIGTERM while frozen: thawed" in lab.log_text()


def test_sigkill_while_frozen_kernel_resumes_and_restart_thaws_the_hooks(
        lab, kernel, started, daemons):
    lab.write_hook("10-db")
    service, daemon = started("ufs_only")
    kernel.request(Op.FREEZE)
    daemon.signal(signal.SIGKILL)
    daemon.wait()
    # the service resumes what a dead process held, as the kernel does
    assert wait_for(lambda: service.suspended == frozenset())
    assert status_of(lab)[0] == 1  # the state file still says frozen
    kernel.connected.clear()
    restarted = daemons(lab)
    kernel.wait_connected()
    assert serving(kernel)
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    code, text = status_of(lab)
    assert code == 0 and "last RECOVERY: ok" in text
    assert restarted.running


def test_watchdog_thaws_when_no_thaw_arrives(lab, kernel, started, m):
    lab.write_hook("10-db")
    service, daemon = started("ufs_only", "--freeze-timeout", "1")
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert (m.ROOT_UFS.fsid, True) in service.changes  # it was frozen
    assert wait_for(lambda: service.suspended == frozenset(), timeout=4)
    assert (m.VAR_UFS.fsid, False) in service.changes
    assert wait_for(lambda: lab.journal() == ["10-db freeze", "10-db thaw"])
    assert wait_for(lambda: "no THAW within 1 s" in lab.log_text())
    assert kernel.request(Op.THAW).status == Status.SUCCESS  # nothing was frozen
    assert serving(kernel) and daemon.running


def test_thaw_without_freeze_succeeds_and_says_so(lab, kernel, started):
    service, _daemon = started("ufs_only")
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert "THAW: ok: nothing was frozen" in lab.log_text()
    assert service.server.events == []


def test_freeze_twice_refreezes_and_one_thaw_releases_everything(lab, kernel, started, m):
    service, _ = started("two_ufs")
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert service.suspended == frozenset()


@pytest.mark.parametrize("op", [Op.NONE, Op.COUNT, 77])
def test_unknown_op_is_answered_fail_and_the_daemon_keeps_serving(lab, kernel, started, op):
    service, daemon = started("ufs_only")
    assert kernel.request(op).status == Status.FAIL
    assert serving(kernel) and daemon.running
    assert service.server.events == []


def test_request_with_read_error_status_is_answered_fail(lab, kernel, started):
    started("ufs_only")
    assert kernel.request(Op.FREEZE, status=1).status == Status.FAIL
    assert "read error" in lab.log_text()
    assert serving(kernel)


def test_short_frame_with_msgid_is_answered_fail_and_the_daemon_keeps_serving(
        lab, kernel, started):
    service, daemon = started("ufs_only")
    kernel.send_raw(protocol.encode(Op.FREEZE, 0, 4711)[:40])
    answer = kernel.read_frame(timeout=5)
    assert (answer.op, answer.status, answer.msgid) == (Op.FREEZE, Status.FAIL, 4711)
    assert service.suspended == frozenset()
    assert "short frame of 40 bytes" in lab.log_text()
    assert serving(kernel) and daemon.running


def test_short_frame_without_msgid_is_dropped_and_the_daemon_keeps_serving(
        lab, kernel, started):
    started("ufs_only")
    kernel.send_raw(b"\x01\x00\x00")
    assert wait_for(lambda: "no msgid: dropped" in lab.log_text(), timeout=4)
    assert serving(kernel)


def test_peer_closing_the_channel_while_frozen_thaws_and_exits(lab, kernel, started):
    lab.write_hook("10-db")
    service, daemon = started("ufs_only")
    kernel.request(Op.FREEZE)
    kernel.close_client()
    assert daemon.wait() == 0
    assert service.suspended == frozenset()
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    assert "closed" in lab.log_text()


def test_device_busy_exits_69_with_a_clear_message(lab, kernel, started, daemons):
    started("ufs_only")
    second = daemons(lab)
    assert second.wait() == 69
    assert "device busy" in second.stderr() and lab.kernel_path in second.stderr()
    assert serving(kernel)


def test_missing_device_exits_71_naming_the_path(lab, fs_factory, daemons):
    fs_factory("ufs_only")
    daemon = daemons(lab, device=str(lab.dir / "no_such_dev"))
    assert daemon.wait() == 71
    assert "no_such_dev: no such device" in daemon.stderr()


@pytest.mark.parametrize(("args", "complaint"), [
    (["--freeze-timeout", "0"], "--freeze-timeout: '0' must be more than 0"),
    (["--hook-timeout", "soon"], "--hook-timeout: 'soon' is not a number"),
    (["--freeze-timeout", "90000"],
     "--freeze-timeout: '90000' must be more than 0 and at most 86400"),
    (["--zfs", "maybe"], "--zfs: invalid choice: 'maybe'"),
    (["--exclude", "var"], "--exclude: 'var' never matches a mount point"),
])
def test_bad_options_exit_2_naming_the_option(args, complaint):
    result = subprocess.run([sys.executable, "-m", "hvbsd.vss", *args], capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=lab_src()))
    assert result.returncode == 2
    assert complaint in result.stderr


def test_status_exit_code_is_2_when_the_state_is_unknown(lab):
    assert status_of(lab) == (2, f"hvbsd_vssd: state unknown: {lab.state_file} does not"
                                 " exist\n")
    lab.state_file.write_text("{not json")
    assert status_of(lab)[0] == 2


def test_without_n_the_daemon_detaches_and_writes_its_pidfile(lab, kernel, fs_factory,
                                                              daemons):
    service = fs_factory("ufs_only")
    launcher = daemons(lab, foreground=False)
    assert launcher.wait() == 0  # returns once the pidfile is written
    pid = int(lab.pidfile.read_text())
    try:
        assert pid != launcher.proc.pid
        kernel.wait_connected()
        assert kernel.request(Op.FREEZE).status == Status.SUCCESS
        assert service.suspended
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not lab.pidfile.exists())
        assert service.suspended == frozenset()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_app_channel_runs_hooks_and_fs_channel_only_filesystems(
        lab, kernel, kernel_factory, fs_factory, daemons, m):
    lab.write_hook("10-db")
    service = fs_factory("ufs_only")
    app_kernel = kernel_factory(lab.kernel_path + ".app")
    daemons(lab, "--app-device", app_kernel.path)
    kernel.wait_connected()
    app_kernel.wait_connected()
    # the kernel's order: app then fs for FREEZE, fs then app for THAW
    assert app_kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert lab.journal() == ["10-db freeze"] and not service.suspended
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert lab.journal() == ["10-db freeze"]
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert lab.journal() == ["10-db freeze"] and not service.suspended
    assert app_kernel.request(Op.THAW).status == Status.SUCCESS
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
