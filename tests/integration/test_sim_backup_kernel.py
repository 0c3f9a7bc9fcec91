"""The simulated hv_vss driver's rules (hv_snapshot.c), seen from both sides.

The guest here has no hvbsd configuration, so nothing starts a daemon when
the devices appear: the test itself opens the devices (from the host side,
the same sockets the guest sees as /dev/hv_fsvss_dev and /dev/hv_appvss_dev)
and plays a scripted daemon frame by frame, while the host's requests go
through the real host process (`hvbsd.sim.host`).
"""

from __future__ import annotations

import concurrent.futures
import select
import subprocess
import sys
import time
from typing import Any, Optional

import pytest

from hvbsd.sim import host
from hvbsd.sim.guest import Guest
from hvbsd.vss.channel import ChannelBusy, SocketChannel
from hvbsd.vss.protocol import Message, Op, Status

pytestmark = pytest.mark.slow

VSS_TIMEOUT = 1.0


class Scripted:
    """A daemon that answers only when told to."""

    def __init__(self, guest: Guest, device: str = "hv_fsvss_dev") -> None:
        self.channel = SocketChannel(str(guest.state_dir / "dev" / device),
                                     "app" if "app" in device else "fs")

    def next(self, timeout: float = 2.0) -> Optional[Message]:
        ready, _, _ = select.select([self.channel], [], [], timeout)
        if not ready:
            return None
        received = self.channel.receive()
        assert len(received) == 1, received
        message = received[0]
        assert isinstance(message, Message)
        return message

    def answer(self, message: Message, ok: bool = True) -> None:
        self.channel.send(message.reply(Status.SUCCESS if ok else Status.FAIL))

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def bare(sim_guests: Any) -> Guest:
    guest: Guest = sim_guests("k1")
    host.start(guest, VSS_TIMEOUT)
    return guest


def later(pool: concurrent.futures.ThreadPoolExecutor, guest: Guest, op: str,
          host_timeout: float = 5.0) -> concurrent.futures.Future[dict[str, Any]]:
    return pool.submit(host.request, guest, op, host_timeout)


def events(guest: Guest) -> list[dict[str, Any]]:
    return list(host.call(guest, {"op": "events"})["events"])


def test_devices_are_sockets_in_the_guests_dev_and_devd_was_told(bare):
    listing = bare.exec(["sh", "-c", "ls -l /dev/hv_fsvss_dev /dev/hv_appvss_dev"],
                        text=True, check=True).stdout
    assert listing.count("srw-r-----") == 2
    dispatched = host.call(bare, {"op": "status"})["dispatched"]
    assert {d["event"] for d in dispatched} == {
        "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_fsvss_dev",
        "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_appvss_dev",
        "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_kvp_dev"}  # the host's KVP driver


def test_request_before_the_daemon_ever_opened_is_not_answered(bare):
    reply = host.request(bare, "HOT_BACKUP", host_timeout=0.5)
    assert reply["status"] is None and reply["latency"] >= 0.5
    # the first open processes what the host queued meanwhile
    daemon = Scripted(bare)
    message = daemon.next()
    assert message is not None and message.op == Op.CHECK
    daemon.close()


def test_after_the_daemon_died_every_request_fails_at_once(bare):
    Scripted(bare).close()
    time.sleep(0.1)
    reply = host.request(bare, "FREEZE", host_timeout=5)
    assert reply["status"] == "HV_E_FAIL" and reply["latency"] < 0.5
    # a new opener registers again
    daemon = Scripted(bare)
    with concurrent.futures.ThreadPoolExecutor() as pool:
        pending = later(pool, bare, "HOT_BACKUP")
        message = daemon.next()
        assert message is not None
        daemon.answer(message)
        reply = pending.result()
    assert reply["status"] == "HV_S_OK" and reply["flags"] == 5


def test_second_opener_is_busy_and_the_first_keeps_the_device(bare):
    first = Scripted(bare)
    with pytest.raises(ChannelBusy):
        Scripted(bare)
    assert host.call(bare, {"op": "status"})["driver"]["fs_registered"]
    first.close()


def test_one_request_in_flight_new_ones_dropped_and_the_timer_fails_the_first(bare):
    daemon = Scripted(bare)
    with concurrent.futures.ThreadPoolExecutor() as pool:
        first = later(pool, bare, "FREEZE")
        message = daemon.next()
        assert message is not None and message.op == Op.FREEZE
        second = host.request(bare, "THAW", host_timeout=0.3)
        assert second["status"] is None  # dropped without any reply
        reply = first.result()
    assert reply["status"] == "HV_E_FAIL"
    assert VSS_TIMEOUT <= reply["latency"] < VSS_TIMEOUT + 0.5
    daemon.answer(message)  # too late: the kernel no longer knows the msgid
    time.sleep(0.1)
    outcomes = [e.get("outcome") for e in events(bare)]
    assert "dropped: a request is in flight" in outcomes
    assert "dropped: no such request waiting" in outcomes
    # the daemon was not told; the next request goes through normally
    with concurrent.futures.ThreadPoolExecutor() as pool:
        pending = later(pool, bare, "THAW")
        message = daemon.next()
        assert message is not None and message.op == Op.THAW
        daemon.answer(message)
        assert pending.result()["status"] == "HV_S_OK"
    daemon.close()


def test_app_before_fs_for_check_and_freeze_fs_before_app_for_thaw(bare):
    fs, app = Scripted(bare), Scripted(bare, "hv_appvss_dev")
    with concurrent.futures.ThreadPoolExecutor() as pool:
        for op, first, second in (("HOT_BACKUP", app, fs), ("FREEZE", app, fs),
                                  ("THAW", fs, app)):
            pending = later(pool, bare, op)
            message = first.next()
            assert message is not None
            assert second.next(0.2) is None  # not asked before the first answered
            first.answer(message)
            message = second.next()
            assert message is not None
            second.answer(message)
            assert pending.result()["status"] == "HV_S_OK", op
        # an application failure fails the request; the daemon is never asked
        pending = later(pool, bare, "FREEZE")
        message = app.next()
        assert message is not None
        app.answer(message, ok=False)
        assert pending.result()["status"] == "HV_E_FAIL"
        assert fs.next(0.3) is None
        # a daemon THAW failure fails it and the application is not told
        pending = later(pool, bare, "THAW")
        message = fs.next()
        assert message is not None
        fs.answer(message, ok=False)
        assert pending.result()["status"] == "HV_E_FAIL"
        assert app.next(0.3) is None
    fs.close()
    app.close()


def test_one_timer_covers_both_stages(bare):
    fs, app = Scripted(bare), Scripted(bare, "hv_appvss_dev")
    with concurrent.futures.ThreadPoolExecutor() as pool:
        pending = later(pool, bare, "FREEZE")
        message = app.next()
        assert message is not None
        time.sleep(VSS_TIMEOUT * 0.6)
        app.answer(message)
        message = fs.next()
        assert message is not None  # handed on, but the timer was not re-armed
        reply = pending.result()
    assert reply["status"] == "HV_E_FAIL" and reply["latency"] < VSS_TIMEOUT + 0.3
    fs.close()
    app.close()


def test_get_dm_info_is_answered_by_the_kernel_and_unknown_ops_get_no_response(bare):
    daemon = Scripted(bare)
    assert host.request(bare, "GET_DM_INFO", 2)["status"] == "HV_S_OK"
    for name in ("BU_COMPLETE", "CREATE", "AUTO_RECOVER"):
        reply = host.request(bare, name, host_timeout=VSS_TIMEOUT / 2)
        assert reply["status"] is None, name  # hv_vss_process_request sends nothing
    assert daemon.next(0.1) is None  # and the daemon is not asked
    assert [e["outcome"] for e in events(bare) if e.get("op") == "BU_COMPLETE"] == [
        "no response: unknown operation"]
    daemon.close()


def test_the_host_stopping_sigkills_the_guest_process_that_opened_the_device(bare):
    opener = bare.popen(
        ["python3", "-c", "import socket,time\n"
         "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
         "s.connect('/dev/hv_fsvss_dev'); s.recv(100); print('open', flush=True)\n"
         "time.sleep(120)\n"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert opener.stdout is not None and opener.stdout.readline() == b"open\n"
        status = host.call(bare, {"op": "status"})["driver"]
        assert status["fs_registered"] and status["fs_opener"] is not None
        host.stop(bare)
        assert opener.wait(20) in (-9, 137)  # SIGKILL, as hv_vss_detach sends it
    finally:
        if opener.poll() is None:
            opener.kill()
            opener.wait()


def test_stopping_the_guest_stops_its_host(sim_guests):
    guest = sim_guests("k2")
    pid = host.start(guest, VSS_TIMEOUT)
    guest.stop()
    assert host.host_pid(guest) is None
    from hvbsd.sim import namespace

    assert namespace.process_starttime(pid) is None
    assert not (guest.state_dir / "dev" / "hv_fsvss_dev").exists()


@pytest.mark.parametrize(("value", "complaint"), [
    ("soon", "--host-timeout: 'soon' is not a number of seconds"),
    ("0", "--host-timeout: '0' must be more than 0 and at most 3600"),
    ("4000", "--host-timeout: '4000' must be more than 0 and at most 3600"),
])
def test_backup_refuses_a_bad_host_timeout_before_touching_the_guest(value, complaint):
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd", "sim", "backup", "no-such-guest", "--host-timeout", value],
        capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert complaint in result.stderr
