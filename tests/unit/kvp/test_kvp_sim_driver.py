"""The simulated hv_kvp driver keeps hv_kvp.c's rules (a raw client stands in for a daemon)."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from hvbsd.kvp import protocol, simwire
from hvbsd.sim import hyperv_kvp as host
from hvbsd.sim.hyperv_vss import Loop


class Raw:
    """A bare opener of the simulated device: records in and out, nothing decided."""

    def __init__(self, driver: host.KvpDriver) -> None:
        self.driver = driver
        self.sock = simwire.device_socket()
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            self.sock.connect(str(driver.path))
        self.open_result = self.next(simwire.KIND_OPEN)

    def next(self, kind: int, limit: float = 5.0) -> Optional[Tuple[int, bytes]]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.driver.loop.run_once(0.02)
            try:
                record = self.sock.recv(simwire.MAX_RECORD + 1)
            except BlockingIOError:
                continue
            if not record:
                return None
            decoded = simwire.decode(record)
            assert decoded is not None
            if decoded[0] == kind:
                return decoded[1], decoded[2]
        return None

    def write(self, data: bytes) -> int:
        self.sock.send(simwire.encode(simwire.KIND_WRITE, 0, data))
        result = self.next(simwire.KIND_WRITTEN)
        assert result is not None
        return result[0]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def driver(short_root: Path):
    loop = Loop()
    kvp = host.KvpDriver(loop, short_root, timeout=0.5)
    kvp.attach()
    yield kvp
    kvp.detach(kill=False)
    loop.close()


def test_host_messages_wait_unanswered_until_a_daemon_registers(driver) -> None:
    answers: List[Tuple[int, bytes]] = []
    driver.host_request(host.host_get(0, "k"), lambda s, r: answers.append((s, r)))
    for _ in range(20):
        driver.loop.run_once(0.05)
    assert answers == []  # longer than the timeout: nothing is read before registration
    raw = Raw(driver)
    assert raw.open_result == (0, b"")
    assert raw.write(protocol.register()) == 0
    request = raw.next(simwire.KIND_MESSAGE)
    assert request is not None and request[1][0] == protocol.Op.GET


def test_a_first_write_that_is_not_the_registration_fails_with_einval(driver) -> None:
    raw = Raw(driver)
    assert raw.write(protocol.request(protocol.Op.GET)) == errno.EINVAL
    assert not driver.register_done
    assert raw.write(protocol.register()) == 0 and driver.register_done


def test_a_second_opener_gets_ebusy(driver) -> None:
    first = Raw(driver)
    second = Raw(driver)
    assert first.open_result == (0, b"") and second.open_result == (errno.EBUSY, b"")


def test_no_answer_within_the_timeout_fails_the_request_and_a_late_one_is_dropped(
        driver) -> None:
    raw = Raw(driver)
    raw.write(protocol.register())
    status, _ = driver.transact(host.host_get(0, "k"), limit=5)
    assert status == host.HV_E_FAIL
    assert driver.daemon_busy
    late = raw.next(simwire.KIND_MESSAGE)
    assert late is not None
    assert raw.write(protocol.answer(protocol.Status.S_OK, b"")) == 0
    assert not driver.daemon_busy
    assert any(e["what"] == "write" and "dropped" in e.get("outcome", "")
               for e in driver.events)


def test_a_request_that_finds_the_daemon_busy_is_never_handed_over(driver) -> None:
    raw = Raw(driver)
    raw.write(protocol.register())
    assert driver.transact(host.host_get(0, "a"), limit=5)[0] == host.HV_E_FAIL
    raw.next(simwire.KIND_MESSAGE)  # the first request, never answered
    assert driver.transact(host.host_get(0, "b"), limit=5)[0] == host.HV_E_FAIL
    assert raw.next(simwire.KIND_MESSAGE, limit=0.3) is None
    assert any("still busy" in e.get("outcome", "") for e in driver.events)


def test_an_answer_to_an_unknown_operation_reaches_the_host_but_the_write_fails(driver) -> None:
    raw = Raw(driver)
    raw.write(protocol.register())
    answers: List[Tuple[int, bytes]] = []
    driver.host_request(protocol.request(9), lambda s, r: answers.append((s, r)))
    assert raw.next(simwire.KIND_MESSAGE) is not None
    assert raw.write(protocol.answer(protocol.Status.NOT_SUPPORTED, b"")) == errno.EINVAL
    assert answers and answers[0][0] == protocol.Status.NOT_SUPPORTED


def test_a_write_takes_at_most_one_message(driver) -> None:
    raw = Raw(driver)
    raw.write(protocol.register())
    answers: List[Tuple[int, bytes]] = []
    driver.host_request(host.host_enumerate(0, 0), lambda s, r: answers.append((s, r)))
    raw.next(simwire.KIND_MESSAGE)
    reply = protocol.answer(protocol.Status.S_CONT, b"") + b"\xff" * 5000
    assert raw.write(reply) == 0
    assert answers[0][0] == protocol.Status.S_CONT


def test_close_ends_the_registration(driver) -> None:
    raw = Raw(driver)
    raw.write(protocol.register())
    raw.close()
    for _ in range(5):
        driver.loop.run_once(0.02)
    assert not driver.register_done and driver.opener is None
    again = Raw(driver)
    assert again.open_result == (0, b"")


def test_set_ip_info_gets_the_hn_name_for_the_adapters_guid(driver) -> None:
    guid = host.adapter_guid("00:15:5d:0a:0b:0c")
    message = host.host_set_ip_info(guid.upper(), "10.0.0.5", "24")
    user = protocol.decode(host.host_to_user(message, {guid: "hn3"}))
    assert user.ip_info().adapter_id == "hn3" and user.ip_info().ip_addr == "10.0.0.5"
    other = protocol.decode(host.host_to_user(message, {}))
    assert other.ip_info().adapter_id == "{" + guid.upper() + "}"


def test_the_driver_hands_the_daemon_utf8_key_sizes_as_hv_kvp_c_computes_them() -> None:
    user = protocol.decode(host.host_to_user(host.host_get(0, "Foo"), {}))
    data = user.exchange()
    assert data.key_bytes == b"Foo" and data.key_size == 4
    user = protocol.decode(host.host_to_user(host.host_set(0, "Foo", "bar"), {}))
    assert user.exchange().value_bytes == b"bar" and user.exchange().value_size == 4


def test_a_detach_kills_the_opener(driver) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    driver.daemon_task = sleeper.pid
    driver.detach()
    assert sleeper.wait(5) == -9
