"""The real hvbsd_kvpd process against the simulated hv_kvp driver: every operation."""

from __future__ import annotations

import json
import os
import signal
import struct
import time

import pytest
from kvp_guest import HN0_MAC, HN1_MAC, HN10_MAC, RC_CONF_LAGG, TEN_IFCONFIG, Guest

from hvbsd.kvp import pool as kvp_pool
from hvbsd.kvp import protocol, simwire
from hvbsd.kvp.protocol import Op, Status
from hvbsd.sim import hyperv_kvp as host

HOST_MAC = HN0_MAC.upper()


def test_set_then_get_returns_the_value_in_utf16_to_the_host(running: Guest) -> None:
    status, _ = running.transact(host.host_set(0, "Role", "web-frontend"))
    assert status == Status.S_OK
    status, reply = running.transact(host.host_get(0, "Role"))
    assert status == Status.S_OK
    assert host.decode_exchange(reply) == host.HostEntry("Role", "web-frontend")


def test_set_writes_the_stock_daemons_pool_file_format(running: Guest) -> None:
    running.transact(host.host_set(1, "Key", "Value"))
    data = (running.pool_dir / ".kvp_pool_1").read_bytes()
    assert len(data) == kvp_pool.RECORD_SIZE == 2560
    assert data[:4] == b"Key\0" and data[512:518] == b"Value\0"
    assert oct(os.stat(running.pool_dir / ".kvp_pool_1").st_mode & 0o777) == "0o604"


def test_get_of_a_missing_key_answers_s_cont(running: Guest) -> None:
    status, _ = running.transact(host.host_get(0, "Nothing"))
    assert status == Status.S_CONT


def test_delete_removes_the_key_and_a_second_delete_answers_s_cont(running: Guest) -> None:
    running.transact(host.host_set(0, "A", "1"))
    running.transact(host.host_set(0, "B", "2"))
    assert running.transact(host.host_delete(0, "A"))[0] == Status.S_OK
    assert running.transact(host.host_delete(0, "A"))[0] == Status.S_CONT
    assert running.transact(host.host_get(0, "B"))[0] == Status.S_OK


def test_numbers_the_host_sets_are_stored_as_decimal_text(running: Guest) -> None:
    running.transact(host.host_set_number(0, "Count", 4242))
    running.transact(host.host_set_number(0, "Big", 2 ** 40, wide=True))
    assert host.decode_exchange(running.transact(host.host_get(0, "Count"))[1]).value == "4242"
    assert host.decode_exchange(running.transact(host.host_get(0, "Big"))[1]).value == \
        str(2 ** 40)


def test_enumerate_of_a_pool_lists_its_records_then_s_cont(running: Guest) -> None:
    for key in ("one", "two", "three"):
        running.transact(host.host_set(1, key, key.upper()))
    seen = []
    for index in range(5):
        status, reply = running.transact(host.host_enumerate(1, index))
        if status != Status.S_OK:
            assert status == Status.S_CONT
            break
        seen.append(host.decode_exchange(reply, enumerate_reply=True))
    assert [(e.key, e.value) for e in seen] == [("one", "ONE"), ("two", "TWO"),
                                                 ("three", "THREE")]


def test_the_auto_pool_reports_the_os_as_the_stock_daemon_does(running: Guest) -> None:
    code, text = host.command(running.driver, ["enum", "auto"])
    assert code == 0
    values = dict(line.split("=", 1) for line in text.splitlines())
    assert values == {
        "FullyQualifiedDomainName": "guest.example.com",
        "IntegrationServicesVersion": "BSD Pre-Release version",
        "NetworkAddressIPv4": "127.0.0.1;10.0.0.4;",
        "NetworkAddressIPv6": "::1;fe80::1;fe80::215:5dff:fe0a:b0c;fe80::215:5dff:fe0a:b0c;"
                              "2001:db8::4;",
        "OSBuildNumber": "14.5",
        "OSName": "FreeBSD",
        "OSMajorVersion": "",
        "OSMinorVersion": "",
        "OSVersion": "14.5",
        "ProcessorArchitecture": "amd64",
    }


def test_the_host_cannot_write_or_delete_in_the_auto_pool(running: Guest) -> None:
    assert running.transact(host.host_set(2, "OSName", "Windows"))[0] == Status.S_CONT
    assert running.transact(host.host_delete(2, "OSName"))[0] == Status.S_CONT
    assert (running.pool_dir / ".kvp_pool_2").read_bytes() == b""


def test_get_ip_info_for_hn0_in_lagg_mode_reports_the_laggs_ipv4_and_ipv6(
        running: Guest) -> None:
    status, reply = running.transact(host.host_get_ip_info(HOST_MAC))
    assert status == Status.S_OK
    info = host.decode_ip_info(reply)
    assert info.addresses == ["10.0.0.4", "fe80::215:5dff:fe0a:b0c", "2001:db8::4"]
    assert info.sub_net == "255.255.255.0;/64;/64;"
    assert info.addr_family == protocol.ADDR_FAMILY_IPV4 | protocol.ADDR_FAMILY_IPV6
    assert info.gate_way == "10.0.0.1;fe80::1;"
    assert info.dns_addr == "10.0.0.2;"
    assert info.dhcp_enabled == 1  # ifconfig_hn0="DHCP" in the managed block
    assert info.adapter_id == HOST_MAC


def test_the_stock_lookup_tells_the_host_no_ipv4_in_lagg_mode(guest: Guest) -> None:
    guest.start("--lookup", "stock")
    status, reply = guest.transact(host.host_get_ip_info(HOST_MAC))
    assert status == Status.S_OK
    info = host.decode_ip_info(reply)
    assert info.addresses == ["fe80::215:5dff:fe0a:b0c"]  # hn0's own: no IPv4 at all
    assert info.addr_family == protocol.ADDR_FAMILY_IPV6


def test_hn1_gets_only_its_own_addresses_not_hn10s(guest: Guest) -> None:
    guest.set_output("ifconfig", TEN_IFCONFIG)
    guest.start()
    info = host.decode_ip_info(guest.transact(host.host_get_ip_info(HN1_MAC.upper()))[1])
    assert info.addresses == ["10.0.1.5"]
    info = host.decode_ip_info(guest.transact(host.host_get_ip_info(HN10_MAC.upper()))[1])
    assert info.addresses == ["10.0.10.5"]


def test_get_ip_info_for_an_unknown_mac_answers_e_fail(running: Guest) -> None:
    assert running.transact(host.host_get_ip_info("00:15:5D:FF:FF:FF"))[0] == Status.E_FAIL
    assert running.transact(host.host_get_ip_info(""))[0] == Status.E_FAIL


def test_set_ip_on_a_managed_hn_rewrites_only_the_managed_block(running: Guest) -> None:
    code, text = host.command(running.driver, ["set-ip", HN0_MAC, "10.0.0.50/24",
                                               "10.0.0.1"])
    assert (code, text) == (0, "")
    after = running.rc_conf.read_text()
    assert 'ifconfig_hn0="inet 10.0.0.50/24"' in after
    assert 'defaultrouter="10.0.0.1"' in after
    before_lines = RC_CONF_LAGG.splitlines()
    after_lines = after.splitlines()
    begin = before_lines.index("# BEGIN hvbsd managed block")
    assert after_lines[:begin + 1] == before_lines[:begin + 1]
    assert after_lines[-2:] == before_lines[-2:]  # END marker and keymap unchanged
    assert 'ifconfig_hn5="DHCP"' in after


def test_set_ip_on_an_hn_hvbsd_does_not_manage_fails_and_changes_nothing(
        running: Guest) -> None:
    running.guids[host.adapter_guid("00:15:5d:00:00:05")] = "hn5"
    code, text = host.command(running.driver, ["set-ip", "00:15:5d:00:00:05",
                                               "192.0.2.7/24"])
    assert code == 1 and "E_FAIL" in text
    assert running.rc_conf.read_text() == RC_CONF_LAGG


def test_set_ip_for_an_adapter_guid_of_no_hn_fails(running: Guest) -> None:
    message = host.host_set_ip_info("12345678-1234-1234-1234-123456789abc", "10.0.0.9", "24")
    assert running.transact(message)[0] == Status.E_FAIL
    assert running.rc_conf.read_text() == RC_CONF_LAGG


def test_set_ip_off_refuses_even_a_managed_hn(guest: Guest) -> None:
    guest.start("--set-ip", "off")
    code, _ = host.command(guest.driver, ["set-ip", HN0_MAC, "10.0.0.50/24"])
    assert code == 1
    assert guest.rc_conf.read_text() == RC_CONF_LAGG


def test_an_unknown_operation_is_answered_not_supported(running: Guest) -> None:
    status, _ = running.transact(protocol.request(9, 0))
    assert status == Status.NOT_SUPPORTED
    assert running.transact(host.host_get(0, "x"))[0] == Status.S_CONT  # still serving


def test_a_pool_number_out_of_range_is_answered_e_fail(running: Guest) -> None:
    assert running.transact(host.host_get(7, "x"))[0] == Status.E_FAIL
    assert running.transact(host.host_set(200, "x", "y"))[0] == Status.E_FAIL
    assert sorted(os.listdir(running.pool_dir)) == [f".kvp_pool_{n}" for n in range(5)]


def test_a_host_key_size_beyond_the_protocols_is_refused_with_s_cont(running: Guest) -> None:
    message = bytearray(host.host_set(0, "k", "v"))
    struct.pack_into("<I", message, 8, 600 * 2)  # the driver hands the daemon 600 bytes
    assert running.transact(bytes(message))[0] == Status.S_CONT
    assert (running.pool_dir / ".kvp_pool_0").read_bytes() == b""


def test_a_huge_host_value_size_reads_no_further_than_the_message(running: Guest) -> None:
    message = host.host_exchange(Op.SET, 0, "k", "v".encode("utf-16-le") + b"\0\0",
                                 value_size=0xFFFFFFFF)
    assert running.transact(message)[0] == Status.S_OK
    assert host.decode_exchange(running.transact(host.host_get(0, "k"))[1]).value == "v"


def test_a_key_of_more_than_254_characters_comes_back_cut_as_the_driver_cuts_it(
        running: Guest) -> None:
    key = "k" * 300
    running.transact(host.host_set(1, key, "v"))
    status, reply = running.transact(host.host_enumerate(1, 0))
    assert status == Status.S_OK
    entry = host.decode_exchange(reply, enumerate_reply=True)
    assert entry.key == "k" * 254 and entry.value == "v"


def test_a_second_daemon_exits_69_and_leaves_the_first_serving(running: Guest) -> None:
    second = running.run()
    assert second.returncode == 69, second.stderr
    assert "another hvbsd_kvpd is running" in second.stderr
    assert second.stderr.count("\n") == 1
    assert running.transact(host.host_get(0, "x"))[0] == Status.S_CONT


def test_a_second_opener_of_the_device_exits_69(running: Guest) -> None:
    other_pid = running.root / "var/run/other.pid"
    # argparse takes the last --pidfile: this daemon only competes for the device
    result = running.run_serving("--pidfile", str(other_pid), "--state-file",
                                 str(running.root / "var/run/other.state"))
    assert result.returncode == 69, result.stderr
    assert "device busy" in result.stderr
    assert running.transact(host.host_get(0, "x"))[0] == Status.S_CONT


def test_status_reports_the_running_daemon_and_its_requests(running: Guest) -> None:
    running.transact(host.host_get(0, "x"))
    running.transact(host.host_get_ip_info(HOST_MAC))
    deadline = time.monotonic() + 15  # the status file follows within STATE_SECONDS
    while True:
        result = running.run("--status")
        if "GET_IP_INFO 1" in result.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stdout
    assert "hvbsd_kvpd: running" in result.stdout
    assert "GET 1" in result.stdout and "GET_IP_INFO 1" in result.stdout
    assert "last GET_IP_INFO: S_OK" in result.stdout


def test_status_of_a_hostile_state_file_is_unknown_not_a_traceback(guest: Guest) -> None:
    guest.state_file.write_text(json.dumps({"version": 1, "pid": "1; rm -rf /"}))
    result = guest.run("--status")
    assert result.returncode == 2 and "status unknown" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    guest.state_file.unlink()
    os.mkfifo(guest.state_file)
    result = guest.run("--status", timeout=10)
    assert result.returncode == 2 and "not a regular file" in result.stdout


def test_sigterm_stops_the_daemon_with_status_0_and_removes_the_pidfile(
        running: Guest) -> None:
    process = running.processes[0]
    assert running.pidfile.read_text().strip() == str(process.pid)
    process.terminate()
    assert process.wait(10) == 0
    assert not running.pidfile.exists()


def test_bad_options_exit_2_with_one_line(guest: Guest) -> None:
    for extra, words in ((["--apply-command", "netif restart"], "absolute path"),
                         (["--lookup", "prefix"], "invalid choice")):
        result = guest.run(*extra)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
    (guest.root / "var/run/dir.pid").mkdir()
    result = guest.run("--pidfile", str(guest.root / "var/run/dir.pid"))
    assert result.returncode == 2 and "directory" in result.stderr


def test_a_pool_directory_that_is_a_symlink_is_refused_and_nothing_is_created(
        guest: Guest) -> None:
    target = guest.root / "elsewhere"
    target.mkdir()
    guest.pool_dir.parent.mkdir(parents=True)
    guest.pool_dir.symlink_to(target)
    result = guest.run()
    assert result.returncode == 71, result.stderr
    assert "symbolic link" in result.stderr
    assert list(target.iterdir()) == []


def test_no_device_exits_71_naming_it(guest: Guest) -> None:
    result = guest.run("--device", str(guest.root / "dev/none"))
    assert result.returncode == 71 and "no such device" in result.stderr


def test_a_daemon_that_never_answers_costs_the_host_e_fail_after_the_timeout(
        guest: Guest) -> None:
    process = guest.start()
    os.kill(process.pid, signal.SIGSTOP)  # registered, then silent
    try:
        assert guest.transact(host.host_get(0, "x"))[0] == host.HV_E_FAIL
        assert guest.driver.daemon_busy  # the driver still waits for its write
    finally:
        os.kill(process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while guest.driver.daemon_busy and time.monotonic() < deadline:
        guest.loop.run_once(0.1)
    # its late answer was dropped (only daemon_busy cleared); the next one is served
    late = [e for e in guest.driver.events if e["what"] in ("write", "close", "respond")]
    assert any(e["what"] == "write" and "dropped" in e["outcome"] for e in late), late
    assert guest.transact(host.host_get(0, "y"))[0] == Status.S_CONT


def _set_with_type(value_type: int) -> bytes:
    return host.host_exchange(Op.SET, 0, "typed", b"\x01\x02\x03\x04", value_type=value_type,
                              value_size=4)


@pytest.mark.parametrize("field, message, wanted", [
    ("operation", protocol.request(6), Status.NOT_SUPPORTED),
    ("operation", protocol.request(255, 0), Status.NOT_SUPPORTED),
    ("pool", host.host_enumerate(5, 0), Status.E_FAIL),
    ("index", host.host_enumerate(0, 0xFFFFFFFF), Status.S_CONT),
    ("index", host.host_enumerate(2, 10), Status.S_CONT),
    ("value_type", _set_with_type(77), Status.S_OK),
    ("key", host.host_set(0, "", "v"), Status.S_CONT),
    ("adapter_id", host.host_get_ip_info("$(reboot)"), Status.E_FAIL),
    ("adapter_id", host.host_get_ip_info("00:15:5D:0A:0B:0C:FF"), Status.E_FAIL),
    ("ip_addr", host.host_set_ip_info(host.adapter_guid(HN0_MAC), "10.0.0.1\";reboot;\"",
                                      "24"), Status.E_FAIL),
    ("sub_net", host.host_set_ip_info(host.adapter_guid(HN0_MAC), "10.0.0.9", "33"),
     Status.E_FAIL),
    ("gate_way", host.host_set_ip_info(host.adapter_guid(HN0_MAC), "10.0.0.9", "24",
                                       "`reboot`"), Status.E_FAIL),
])
def test_bad_input_in_each_field_gets_its_answer_and_changes_nothing_else(
        running: Guest, field: str, message: bytes, wanted: int) -> None:
    assert running.transact(message)[0] == wanted, field
    assert running.rc_conf.read_text() == RC_CONF_LAGG
    assert sorted(os.listdir(running.pool_dir)) == [f".kvp_pool_{n}" for n in range(5)]
    for number in range(5):
        size = (running.pool_dir / f".kvp_pool_{number}").stat().st_size
        assert size % kvp_pool.RECORD_SIZE == 0
    assert running.processes[0].poll() is None
    assert running.transact(host.host_get(0, "after"))[0] == Status.S_CONT


def test_a_key_that_is_not_utf8_is_stored_and_found_as_its_bytes(running: Guest) -> None:
    message = bytearray(host.host_set(0, "k", "v"))
    # U+00E9 and a lone low surrogate the driver drops: the daemon gets "\xc3\xa9"
    struct.pack_into("<3H", message, 16, 0xE9, 0xDC00, 0)
    assert running.transact(bytes(message))[0] == Status.S_OK
    assert host.decode_exchange(running.transact(host.host_get(0, "\u00e9"))[1]).value == "v"


def test_a_short_read_is_dropped_and_the_daemon_keeps_serving(running: Guest) -> None:
    running.driver._send(simwire.encode(simwire.KIND_MESSAGE, 0, b"\x00\x01short"))
    running.driver._send(simwire.encode(simwire.KIND_OPEN, 0))
    assert running.transact(host.host_get(0, "x"))[0] == Status.S_CONT
    assert running.processes[0].poll() is None


def test_the_apply_command_gets_the_changed_interface_after_rc_conf_changed(
        guest: Guest) -> None:
    record = guest.root / "applied"
    script = guest.root / "apply"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{record}'\n")
    script.chmod(0o755)
    guest.start("--apply-command", f"{script} restart")
    assert host.command(guest.driver, ["set-ip", HN0_MAC, "10.0.0.50/24"]) == (0, "")
    assert record.read_text() == "restart hn0\n"
    assert 'ifconfig_hn0="inet 10.0.0.50/24"' in guest.rc_conf.read_text()


def test_a_failing_apply_command_tells_the_host_e_fail(guest: Guest) -> None:
    guest.start("--apply-command", "/bin/false")
    code, text = host.command(guest.driver, ["set-ip", HN0_MAC, "10.0.0.50/24"])
    assert code == 1 and "E_FAIL" in text
    # the managed block was written before the command ran; the next boot uses it
    assert 'ifconfig_hn0="inet 10.0.0.50/24"' in guest.rc_conf.read_text()


def test_the_sim_kvp_command_speaks_for_the_host(running: Guest) -> None:
    driver = running.driver
    assert host.command(driver, ["set", "external", "Role", "db"]) == (0, "")
    assert host.command(driver, ["get", "external", "Role"]) == (0, "db")
    assert host.command(driver, ["enum", "0"]) == (0, "Role=db")
    assert host.command(driver, ["delete", "0", "Role"]) == (0, "")
    assert host.command(driver, ["get", "0", "Role"]) == (1, "the guest answered S_CONT")
    code, text = host.command(driver, ["ip", HN0_MAC])
    assert code == 0 and "addresses: 10.0.0.4;" in text and "dhcp: enabled" in text
    for bad in ([], ["get", "nopool", "k"], ["frobnicate"], ["set", "0", "k"]):
        code, text = host.command(driver, bad)
        assert code == 2 and ("usage" in text or "pool" in text), (bad, text)
