"""The simulated hv_vss driver (hvbsd.sim.hyperv_vss) against hv_snapshot.c's rules.

Each test drives the driver's loop in the test's own thread and plays the
openers with raw SOCK_SEQPACKET sockets, record by record, so every rule is
checked without timing races: the driver's timer is made short (``TIMEOUT``)
instead of its 15 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from hvbsd.sim.hyperv_vss import HOST_OPS, HV_E_FAIL, HV_S_OK, Loop, VssDriver
from hvbsd.vss import protocol, simwire
from hvbsd.vss.protocol import Message, Op, Status

TIMEOUT = 0.4


class Rig:
    """A driver in a loop the test pumps, and the host's answers it collects."""

    def __init__(self, directory: Path, timeout: float = TIMEOUT,
                 in_guest: Optional[Callable[[int], bool]] = None) -> None:
        self.dir = directory
        self.loop = Loop()
        self.driver = VssDriver(self.loop, directory, timeout, in_guest=in_guest)
        self.driver.attach()

    def host(self, name: str) -> List[Tuple[int, Dict[str, Any]]]:
        """Send one host request; the list fills with (status, extra) when answered."""
        got: List[Tuple[int, Dict[str, Any]]] = []
        self.driver.host_request(HOST_OPS[name] if isinstance(name, str) else name,
                                 lambda status, extra: got.append((status, extra)))
        return got

    def pump(self, until: Callable[[], Any] = lambda: False, seconds: float = 2.0) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            result = until()
            if result or time.monotonic() >= deadline:
                return result
            self.loop.run_once(0.01)

    def outcomes(self) -> List[str]:
        return [str(e.get("outcome")) for e in self.driver.events if "outcome" in e]

    def whats(self, what: str) -> List[Dict[str, Any]]:
        return [e for e in self.driver.events if e["what"] == what]

    def close(self) -> None:
        self.driver.detach(kill=False)
        self.loop.close()


class Opener:
    """A scripted opener of one device: raw records, nothing hidden."""

    def __init__(self, rig: Rig, role: str = "fs") -> None:
        self.rig = rig
        self.sock = socket.socket(socket.AF_UNIX, simwire.DEVICE_SOCKET_TYPE)
        self.sock.connect(str(rig.driver.device_path(role)))
        self.sock.setblocking(False)
        self.inbox: List[Tuple[int, Message]] = []
        self.closed = False
        first = rig.pump(lambda: self._take(simwire.KIND_OPEN))
        assert first is not None, "no open result"
        self.errno = first.status

    def _fill(self) -> None:
        while True:
            try:
                record = self.sock.recv(simwire.DEVICE_RECORD_SIZE + 1)
            except BlockingIOError:
                return
            except OSError:
                record = b""
            if not record:
                self.closed = True
                return
            decoded = simwire.decode_record(record)
            assert decoded is not None, record
            self.inbox.append(decoded)

    def _take(self, kind: int) -> Optional[Message]:
        self._fill()
        for index, (got, message) in enumerate(self.inbox):
            if got == kind:
                del self.inbox[index]
                return message
        return None

    def pollin(self, seconds: float = 2.0) -> bool:
        """True when the driver rang POLLIN within ``seconds``."""
        return self.rig.pump(lambda: self._take(simwire.KIND_POLLIN) is not None, seconds)

    def read(self) -> Message:
        """IOCHVVSSREAD."""
        self.sock.send(simwire.encode_record(simwire.KIND_READ))
        message = self.rig.pump(lambda: self._take(simwire.KIND_READ))
        assert message is not None, "the read ioctl got no result"
        return message

    def next(self) -> Message:
        """Wait for POLLIN, then read."""
        assert self.pollin(), "no POLLIN"
        return self.read()

    def write(self, op: int, status: int, msgid: int) -> None:
        """IOCHVVSSWRITE."""
        self.sock.send(simwire.encode_record(simwire.KIND_WRITE,
                                             protocol.encode(op, status, msgid)))
        self.rig.pump(seconds=0.05)

    def answer(self, message: Message, ok: bool = True) -> None:
        self.write(message.op, Status.SUCCESS if ok else Status.FAIL, message.msgid)

    def close(self) -> None:
        self.sock.close()
        self.rig.pump(seconds=0.05)


@pytest.fixture
def short_dir():
    directory = Path(tempfile.mkdtemp(prefix="vssdrv", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def rig(short_dir):
    made = Rig(short_dir)
    yield made
    made.close()


def test_devices_are_seqpacket_sockets_mode_0640(rig):
    for role in ("fs", "app"):
        info = os.stat(rig.driver.device_path(role))
        assert oct(info.st_mode & 0o777) == "0o640"
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with pytest.raises(OSError):  # a stream client cannot even connect
            probe.connect(str(rig.driver.device_path(role)))
        probe.close()


@pytest.mark.parametrize("role", ["fs", "app"])
def test_a_second_opener_gets_ebusy_and_the_first_keeps_the_device(rig, role):
    first = Opener(rig, role)
    second = Opener(rig, role)
    assert (first.errno, second.errno) == (0, 16)
    rig.pump(lambda: second._fill() or second.closed)
    assert second.closed
    assert rig.driver.status()[f"{role}_registered"]
    assert rig.driver.status()[f"{role}_opener"] == os.getpid()


def test_requests_before_any_open_are_not_read_then_the_first_open_processes_them(rig):
    got = rig.host("HOT_BACKUP")
    dm_info = rig.host("GET_DM_INFO")
    rig.pump(seconds=TIMEOUT * 1.5)
    assert got == [] and dm_info == []  # not even read: the host times out
    daemon = Opener(rig)
    message = daemon.next()
    assert (message.op, message.status) == (Op.CHECK, 0)
    assert dm_info == [(HV_S_OK, {"flags": 0})]
    daemon.answer(message)
    assert got == [(HV_S_OK, {"flags": 5})]


def test_after_the_last_close_every_request_fails_at_once(rig):
    Opener(rig).close()
    answers = {name: rig.host(name) for name in ("HOT_BACKUP", "FREEZE", "THAW",
                                                 "GET_DM_INFO", "BU_COMPLETE")}
    assert answers == {"HOT_BACKUP": [(HV_E_FAIL, {"flags": 5})],
                       "FREEZE": [(HV_E_FAIL, {})], "THAW": [(HV_E_FAIL, {})],
                       "GET_DM_INFO": [(HV_E_FAIL, {"flags": 0})],
                       "BU_COMPLETE": [(HV_E_FAIL, {})]}
    daemon = Opener(rig)  # a new opener registers again
    got = rig.host("FREEZE")
    daemon.answer(daemon.next())
    assert got == [(HV_S_OK, {})]


@pytest.mark.parametrize("name", ["CREATE", "DELETE", "BU_COMPLETE", "AUTO_RECOVER", 8, 255])
def test_unknown_host_operations_get_no_response_and_take_no_buffer(rig, name):
    daemon = Opener(rig)
    got = rig.host(name)
    assert not daemon.pollin(TIMEOUT * 2)
    assert got == []
    assert "no response: unknown operation" in rig.outcomes()
    assert rig.driver.status()["live"] == 0
    follow = rig.host("HOT_BACKUP")  # nothing is held up by it
    daemon.answer(daemon.next())
    assert follow == [(HV_S_OK, {"flags": 5})]


def test_get_dm_info_is_answered_by_the_driver_itself(rig):
    daemon = Opener(rig)
    assert rig.host("GET_DM_INFO") == [(HV_S_OK, {"flags": 0})]
    assert not daemon.pollin(0.1)


@pytest.mark.parametrize(("host_op", "op"), [("HOT_BACKUP", Op.CHECK), ("FREEZE", Op.FREEZE),
                                              ("THAW", Op.THAW)])
def test_host_operations_become_userland_ops(rig, host_op, op):
    daemon = Opener(rig)
    got = rig.host(host_op)
    message = daemon.next()
    assert (message.op, message.status) == (op, 0) and message.msgid > 0
    daemon.answer(message)
    assert got[0][0] == HV_S_OK


def test_a_request_while_one_is_queued_is_ignored_without_a_reply(rig):
    daemon = Opener(rig)
    first = rig.host("FREEZE")
    second = rig.host("THAW")  # still in the notify queue
    message = daemon.next()
    third = rig.host("HOT_BACKUP")  # now in the ack queue
    assert not daemon.pollin(0.05)
    daemon.answer(message)
    assert first == [(HV_S_OK, {})]
    rig.pump(seconds=TIMEOUT * 1.5)
    assert second == [] and third == []
    assert rig.outcomes().count("dropped: a request is in flight") == 2


def test_an_empty_read_is_status_1_msgid_0_and_pollin_only_rings_for_a_request(rig):
    daemon = Opener(rig)
    assert not daemon.pollin(0.05)
    empty = daemon.read()
    assert (empty.op, empty.status, empty.msgid) == (0, 1, 0)
    rig.host("FREEZE")
    assert daemon.pollin()
    # the request expires before the daemon reads it: the read finds nothing
    rig.pump(seconds=TIMEOUT * 1.5)
    late = daemon.read()
    assert (late.status, late.msgid) == (1, 0)
    assert not daemon.closed  # the device never hangs up on its opener


def test_check_replies_carry_flags_5_whether_they_succeed_or_fail(rig):
    daemon = Opener(rig)
    ok = rig.host("HOT_BACKUP")
    daemon.answer(daemon.next())
    failed = rig.host("HOT_BACKUP")
    daemon.answer(daemon.next(), ok=False)
    expired = rig.host("HOT_BACKUP")
    rig.pump(lambda: expired, TIMEOUT * 3)
    assert ok == [(HV_S_OK, {"flags": 5})]
    assert failed == [(HV_E_FAIL, {"flags": 5})]
    assert expired == [(HV_E_FAIL, {"flags": 5})]


def test_check_and_freeze_go_to_the_app_first_thaw_to_the_daemon_first(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    for host_op, first, second in (("HOT_BACKUP", app, fs), ("FREEZE", app, fs),
                                   ("THAW", fs, app)):
        got = rig.host(host_op)
        message = first.next()
        assert not second.pollin(0.05)  # not asked before the first answered
        first.answer(message)
        again = second.next()
        assert again.msgid == message.msgid
        second.answer(again)
        assert got[0][0] == HV_S_OK, host_op
    assert [(e["device"], e["op"]) for e in rig.whats("notify")] == [
        ("app", "CHECK"), ("fs", "CHECK"), ("app", "FREEZE"), ("fs", "FREEZE"),
        ("fs", "THAW"), ("app", "THAW")]


def test_an_app_freeze_failure_fails_the_host_and_the_daemon_is_never_asked(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    got = rig.host("FREEZE")
    app.answer(app.next(), ok=False)
    assert got == [(HV_E_FAIL, {})]
    assert not fs.pollin(0.1)


def test_a_daemon_thaw_failure_means_the_app_is_never_told_to_thaw(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    got = rig.host("THAW")
    fs.answer(fs.next(), ok=False)
    assert got == [(HV_E_FAIL, {})]
    assert not app.pollin(0.1)


def test_a_daemon_freeze_failure_after_the_app_froze_never_thaws_the_app(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    got = rig.host("FREEZE")
    app.answer(app.next())
    fs.answer(fs.next(), ok=False)
    assert got == [(HV_E_FAIL, {})]
    assert not app.pollin(TIMEOUT * 1.5)  # no THAW for the frozen app, ever
    assert [e["device"] for e in rig.whats("notify")] == ["app", "fs"]


def test_one_timer_covers_app_and_daemon_and_expiry_thaws_nothing(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    got = rig.host("FREEZE")
    armed = rig.driver.status()["in_flight"]["expires"]
    message = app.next()
    rig.pump(seconds=TIMEOUT * 0.6)
    app.answer(message)
    handed = fs.next()  # handed on, but the timer was not re-armed
    assert handed.msgid == message.msgid and got == []
    assert rig.driver.status()["in_flight"]["expires"] == armed
    rig.pump(lambda: got or time.monotonic() > armed + TIMEOUT * 0.25, TIMEOUT)
    rig.loop.run_once(0)  # whatever was due has run
    assert got == [(HV_E_FAIL, {})]
    expiry = rig.whats("reply")[-1]
    assert "timed out" in expiry["why"] and "fs ack" in expiry["why"]
    # the late answer is dropped silently; the write raised nothing, nothing else moves
    fs.answer(handed)
    assert "dropped: no such request waiting" in rig.outcomes()
    assert not fs.closed and not app.pollin(0.1) and not fs.pollin(0.05)
    assert [e["op"] for e in rig.whats("notify")] == ["FREEZE", "FREEZE"]
    assert got == [(HV_E_FAIL, {})]


def test_the_answers_opt_decides_and_a_mismatch_is_logged_as_the_kassert(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    # THAW answered as FREEZE by the daemon: the driver answers the host at once
    # (the CHECK/FREEZE case) and the app is never told to thaw
    got = rig.host("THAW")
    message = fs.next()
    fs.write(Op.FREEZE, Status.SUCCESS, message.msgid)
    assert got == [(HV_S_OK, {})]
    assert not app.pollin(0.1)
    [error] = rig.whats("error")
    assert error["outcome"] == "KASSERT: Mismatched VSS operation!"
    assert (error["request_op"], error["answer_op"]) == ("THAW", "FREEZE")


def test_an_answer_with_an_opt_no_case_knows_leaves_the_request_to_its_timer(rig):
    daemon = Opener(rig)
    got = rig.host("FREEZE")
    message = daemon.next()
    daemon.write(Op.NONE, Status.SUCCESS, message.msgid)
    assert got == []
    rig.pump(lambda: got, TIMEOUT * 2)
    assert got == [(HV_E_FAIL, {})]
    assert "no case for the answer's opt: the timer fails the request" in rig.outcomes()


def test_four_request_buffers_held_requests_use_them_up(rig):
    daemon = Opener(rig)
    for _ in range(4):
        rig.host("FREEZE")
        daemon.write(Op.COUNT, Status.SUCCESS, daemon.next().msgid)  # held until its timer
    fifth = rig.host("FREEZE")
    assert not daemon.pollin(0.05)
    assert "dropped: no free request buffer" in rig.outcomes()
    rig.pump(lambda: rig.driver.status()["live"] == 0, TIMEOUT * 3)
    assert fifth == []


def test_an_app_answer_while_the_daemon_is_closed_is_lost_and_the_timer_fails_it(rig):
    fs, app = Opener(rig, "fs"), Opener(rig, "app")
    got = rig.host("FREEZE")
    message = app.next()
    fs.close()
    app.answer(message)
    assert "Fatal: vss daemon was killed" in rig.outcomes()
    rig.pump(lambda: got, TIMEOUT * 2)
    assert got == [(HV_E_FAIL, {})]


def test_a_short_or_foreign_record_is_ignored_and_the_next_whole_one_is_read(rig):
    daemon = Opener(rig)
    got = rig.host("FREEZE")
    assert daemon.pollin()
    for junk in (b"\x02", protocol.encode(Op.FREEZE, 0, 1)[:40], b"x" * 300,
                 simwire.encode_record(simwire.KIND_POLLIN)):
        daemon.sock.send(junk)
    message = daemon.read()
    assert message.op == Op.FREEZE
    daemon.answer(message)
    assert got == [(HV_S_OK, {})]
    assert len(rig.whats("bad record")) == 4


def test_the_ring_before_the_first_open_is_bounded(rig):
    for _ in range(100):
        rig.host("GET_DM_INFO")
    assert rig.driver.status()["unread"] == 64
    assert "lost: the VMBus ring is full" in rig.outcomes()


def _opener_process(path: Path, then_close: bool) -> subprocess.Popen[bytes]:
    code = ("import socket,sys,time\n"
            "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
            f"s.connect({str(path)!r}); s.recv(100)\n"
            + ("s.close()\n" if then_close else "")
            + "print('open', flush=True)\ntime.sleep(60)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)


@pytest.mark.parametrize("then_close", [False, True])
def test_detach_sigkills_the_remembered_opener_even_after_it_closed(short_dir, then_close):
    children: List[int] = []
    rig = Rig(short_dir, in_guest=lambda pid: pid in children)
    child = _opener_process(rig.driver.device_path("fs"), then_close)
    children.append(child.pid)
    try:
        rig.pump(lambda: rig.driver.status()["ever_opened"])
        assert child.stdout is not None and child.stdout.readline() == b"open\n"
        if not then_close:
            assert rig.driver.status()["fs_opener"] == child.pid  # SO_PEERCRED
        rig.driver.detach(kill=True)
        assert child.wait(10) == -signal.SIGKILL
        assert [e["pid"] for e in rig.whats("killed")] == [child.pid]
        assert not rig.driver.device_path("fs").exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        rig.loop.close()


def test_detach_never_signals_a_process_outside_the_guest(short_dir):
    rig = Rig(short_dir, in_guest=lambda pid: False)
    child = _opener_process(rig.driver.device_path("fs"), False)
    try:
        assert child.stdout is not None
        rig.pump(lambda: rig.driver.status()["fs_registered"])
        rig.driver.detach(kill=True)
        time.sleep(0.2)
        assert child.poll() is None and rig.whats("killed") == []
    finally:
        child.kill()
        child.wait()
        rig.loop.close()
