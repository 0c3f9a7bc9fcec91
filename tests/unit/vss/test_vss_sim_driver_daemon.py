"""The real hvbsd_vssd process against the simulated hv_vss driver.

The driver and the filesystem service run in a loop the test pumps; the
daemon is the real ``python3 -m hvbsd.vss -n`` process, opening the driver's
device socket as it would open /dev/hv_fsvss_dev. The driver's timer is
``TIMEOUT`` instead of 15 s, and hooks sleep fractions of it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from hvbsd.sim.hyperv_vss import HOST_OPS, HV_E_FAIL, HV_S_OK, Loop, VssDriver
from hvbsd.vss.simwire import SimFsServer

TIMEOUT = 1.0


class Host:
    def __init__(self, dev_dir: Path, timeout: float = TIMEOUT) -> None:
        self.loop = Loop()
        self.driver = VssDriver(self.loop, dev_dir, timeout)
        self.driver.attach()
        self.services: List[SimFsServer] = []

    def serve_fs(self, path: str, mounts: list) -> SimFsServer:
        server = SimFsServer(path, mounts)
        self.loop.add_reader(server, lambda: server.serve(0))
        self.services.append(server)
        return server

    def pump(self, until: Callable[[], Any] = lambda: False, seconds: float = 10.0) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            result = until()
            if result or time.monotonic() >= deadline:
                return result
            self.loop.run_once(0.01)

    def request(self, name: str, seconds: float = 10.0) -> List[Tuple[int, Dict[str, Any]]]:
        got: List[Tuple[int, Dict[str, Any]]] = []
        self.driver.host_request(HOST_OPS[name], lambda status, extra: got.append((status, extra)))
        self.pump(lambda: got, seconds)
        return got

    def registered(self, role: str = "fs") -> bool:
        return bool(self.driver.status()[f"{role}_registered"])

    def whats(self, what: str) -> List[Dict[str, Any]]:
        return [e for e in self.driver.events if e["what"] == what]

    def close(self) -> None:
        self.driver.detach(kill=False)
        for server in self.services:
            server.close()
        self.loop.close()


@pytest.fixture
def vss_host(lab):
    made = Host(Path(lab.kernel_path).parent)
    yield made
    made.close()


def device(vss_host: Host, role: str = "fs") -> str:
    return str(vss_host.driver.device_path(role))


def test_the_real_daemon_serves_check_freeze_thaw_through_the_driver(lab, vss_host, daemons, m):
    fs = vss_host.serve_fs(lab.fs_path, m.TABLES["two_ufs"])
    daemon = daemons(lab, device=device(vss_host))
    assert vss_host.pump(lambda: vss_host.registered())
    assert vss_host.request("HOT_BACKUP") == [(HV_S_OK, {"flags": 5})]
    assert vss_host.request("FREEZE") == [(HV_S_OK, {})]
    assert fs.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert vss_host.request("THAW") == [(HV_S_OK, {})]
    assert fs.suspended == frozenset()
    assert daemon.running
    assert vss_host.driver.status()["fs_opener"] == daemon.proc.pid  # the serving process


@pytest.mark.parametrize("name", ["BU_COMPLETE", "CREATE", "AUTO_RECOVER"])
def test_an_unknown_host_operation_gets_no_response_and_the_daemon_keeps_serving(
        lab, vss_host, daemons, m, name):
    vss_host.serve_fs(lab.fs_path, m.TABLES["ufs_only"])
    daemon = daemons(lab, device=device(vss_host))
    assert vss_host.pump(lambda: vss_host.registered())
    assert vss_host.request(name, seconds=TIMEOUT * 1.5) == []
    assert vss_host.whats("notify") == []  # the daemon was never asked
    assert vss_host.request("HOT_BACKUP") == [(HV_S_OK, {"flags": 5})]
    assert daemon.running


def test_a_late_freeze_answer_is_dropped_silently_and_the_daemon_goes_on(
        lab, vss_host, daemons, m):
    lab.write_hook("10-slow", f'[ "$1" = freeze ] && sleep {TIMEOUT * 1.5}; exit 0')
    fs = vss_host.serve_fs(lab.fs_path, m.TABLES["ufs_only"])
    daemon = daemons(lab, "--hook-timeout", "10", device=device(vss_host))
    assert vss_host.pump(lambda: vss_host.registered())
    assert vss_host.request("FREEZE") == [(HV_E_FAIL, {})]
    [reply] = vss_host.whats("reply")
    assert reply["why"].startswith("timed out")
    assert vss_host.pump(lambda: vss_host.whats("late"))  # the daemon's answer came later
    [late] = vss_host.whats("late")
    assert late["outcome"] == "dropped: no such request waiting"
    assert daemon.running and "cannot answer" not in lab.log_text()
    # the host's THAW reaches the daemon, which thaws whatever it did
    assert vss_host.request("THAW") == [(HV_S_OK, {})]
    assert fs.suspended == frozenset()
    assert lab.journal()[-1] == "10-slow thaw"


def test_one_timer_spans_the_app_and_the_daemon_and_expiry_thaws_nothing(
        lab, vss_host, daemons, m, tmp_path):
    # the "app" is a second real daemon on /dev/hv_appvss_dev, with hooks and no
    # filesystems; each side takes 0.6 of the driver's timer
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "hooks").mkdir(mode=0o755)
    app_lab = dataclasses.replace(
        lab, dir=app_dir, fs_path=lab.fs_path + "-app", hooks_dir=app_dir / "hooks",
        state_file=app_dir / "state.json", pidfile=app_dir / "pid",
        log_file=app_dir / "messages")
    app_lab.write_hook("10-app", f'[ "$1" = freeze ] && sleep {TIMEOUT * 0.6}; exit 0')
    lab.write_hook("10-fs", f'[ "$1" = freeze ] && sleep {TIMEOUT * 0.6}; exit 0')
    vss_host.serve_fs(app_lab.fs_path, [m.DEVFS])
    fs = vss_host.serve_fs(lab.fs_path, m.TABLES["ufs_only"])
    app = daemons(app_lab, "--hook-timeout", "10", device=device(vss_host, "app"))
    daemon = daemons(lab, "--hook-timeout", "10", device=device(vss_host))
    assert vss_host.pump(lambda: vss_host.registered("app") and vss_host.registered())
    assert vss_host.request("FREEZE") == [(HV_E_FAIL, {})]
    assert [e["device"] for e in vss_host.whats("notify")] == ["app", "fs"]
    [reply] = vss_host.whats("reply")
    assert "timed out" in reply["why"] and reply["path"] == ["app", "fs"]
    assert vss_host.pump(lambda: vss_host.whats("late"))
    assert [e["device"] for e in vss_host.whats("late")] == ["fs"]
    # nothing was thawed by the driver: the app's hook is still frozen
    assert vss_host.pump(lambda: app_lab.journal() == ["10-app freeze"], 2)
    assert not any(e["op"] == "THAW" for e in vss_host.whats("notify"))
    assert app.running and daemon.running
    # the host's THAW: the daemon first, then the app
    assert vss_host.request("THAW") == [(HV_S_OK, {})]
    assert fs.suspended == frozenset()
    assert app_lab.journal() == ["10-app freeze", "10-app thaw"]
    assert lab.journal() == ["10-fs freeze", "10-fs thaw"]


def test_a_junk_record_before_a_request_cannot_shift_the_real_daemons_frames(
        lab, kernel, fs_factory, daemons):
    service = fs_factory("ufs_only")
    daemon = daemons(lab)
    kernel.wait_connected()
    junk = (b"\x01", b"\x00" * 10, b"x" * 67, b"y" * 69)
    for record in junk:
        kernel.send_raw(record)
    msgid = kernel.post(2)  # FREEZE, with its own msgid
    others = []
    answer = kernel.read_frame(5)
    while answer is not None and answer.msgid != msgid:
        others.append(answer)  # the daemon's own FAIL for a junk record it could parse
        answer = kernel.read_frame(5)
    assert answer is not None and (answer.op, answer.status) == (2, 0)
    assert service.suspended
    assert len(others) <= len(junk) and all(o.status == 1 for o in others)
    assert kernel.request(3).status == 0 and not service.suspended
    assert daemon.running


def test_the_detached_driver_sigkills_the_real_daemon(lab, daemons, m):
    loop_host = Host(Path(lab.kernel_path).parent)
    loop_host.driver.in_guest = lambda pid: pid == daemon.proc.pid
    try:
        loop_host.serve_fs(lab.fs_path, m.TABLES["ufs_only"])
        daemon = daemons(lab, device=device(loop_host))
        assert loop_host.pump(lambda: loop_host.registered())
        loop_host.driver.detach(kill=True)
        assert daemon.wait(10) == -9
    finally:
        for server in loop_host.services:
            server.close()
        loop_host.loop.close()


def test_a_kernel_side_that_stops_reading_never_starves_the_real_daemon(
        lab, kernel, fs_factory, daemons):
    from hvbsd.vss import protocol, simwire

    fs_factory("ufs_only")
    daemon = daemons(lab)
    kernel.wait_connected()
    # read results nobody asked for: the daemon answers each FAIL, and nothing
    # reads those answers
    kernel.client.settimeout(10)
    for msgid in range(1, 1001):  # far more than the socket buffers
        kernel.send_raw(simwire.encode_record(simwire.KIND_READ,
                                              protocol.encode(1, 0, msgid)))
    deadline = time.monotonic() + 20
    while "record not delivered" not in lab.log_text():
        assert time.monotonic() < deadline, lab.log_text()
        time.sleep(0.05)
    daemon.signal(15)  # SIGTERM is still served
    assert daemon.wait(20) == 0
    assert "exiting: SIGTERM" in lab.log_text()
