"""The hv_kvp_msg layout, exactly as hv_kvp.h packs it, and the parser on any bytes."""

from __future__ import annotations

import struct
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvbsd.kvp import protocol
from hvbsd.kvp.platform import StaticPlatform
from hvbsd.kvp.policy import Policy
from hvbsd.kvp.pool import Pools
from hvbsd.kvp.protocol import ExchangeValue, IpInfo, Op, Status
from hvbsd.sim import hyperv_kvp


def test_sizes_are_those_of_the_packed_structs_of_hv_kvp_h() -> None:
    assert protocol.EXCHANGE_VALUE_SIZE == 4 + 4 + 4 + 512 + 2048 == 2572
    assert protocol.ENUMERATE_SIZE == 2576
    assert protocol.DELETE_SIZE == 516
    assert protocol.IP_VALUE_SIZE == 2 * 128 + 1 + 1 + 2 * 1024 * 3 + 2 * 512 == 7426
    assert protocol.MESSAGE_SIZE == 4 + 7426 == 7430
    assert protocol.IP_MESSAGE_SIZE == 7428
    assert [int(op) for op in Op] == [0, 1, 2, 3, 4, 5] and protocol.OP_REGISTER == 4
    assert protocol.POOL_COUNT == 5
    assert Status.S_CONT == 0x80070103 and Status.E_FAIL == 0x80004005


def test_ip_fields_sit_where_the_packed_struct_puts_them() -> None:
    info = IpInfo("00:15:5D:00:00:01", 3, 1, "10.0.0.4;", "255.255.255.0;", "10.0.0.1;",
                  "10.0.0.2;")
    data = info.pack()
    assert len(data) == protocol.IP_VALUE_SIZE
    assert data[256] == 3 and data[257] == 1
    assert data[258:267] == b"10.0.0.4;"
    assert data[258 + 2048:258 + 2048 + 14] == b"255.255.255.0;"
    assert data[258 + 4096:258 + 4096 + 9] == b"10.0.0.1;"
    assert data[258 + 4096 + 1024:258 + 4096 + 1024 + 9] == b"10.0.0.2;"
    assert IpInfo.unpack(data) == info


def test_an_answer_puts_the_status_over_operation_and_pool() -> None:
    frame = protocol.answer(Status.S_CONT, b"")
    assert struct.unpack_from("<I", frame)[0] == 0x80070103
    assert len(frame) == protocol.MESSAGE_SIZE
    assert protocol.decode(frame).error == Status.S_CONT


def test_registration_is_a_zeroed_message_with_operation_4() -> None:
    frame = protocol.register()
    assert frame[0] == 4 and frame[1:] == bytes(protocol.MESSAGE_SIZE - 1)


def test_exchange_values_are_nul_terminated_and_cut_to_their_fields() -> None:
    value = ExchangeValue.of(b"k" * 600, b"v" * 3000)
    assert value.key_size == 512 and value.value_size == 2048
    packed = value.pack()
    assert packed[12 + 511] == 0 and packed[12 + 512 + 2047] == 0


def test_frames_of_any_other_length_are_refused() -> None:
    for size in (0, 1, 7429, 7431, 16384):
        try:
            protocol.decode(bytes(size))
        except protocol.ProtocolError as exc:
            assert str(size) in str(exc)
        else:
            raise AssertionError(f"{size} bytes decoded")


@given(header=st.binary(min_size=4, max_size=4), offset=st.integers(0, protocol.BODY_SIZE),
       chunk=st.binary(max_size=600), fill=st.sampled_from([b"\0", b"\xff", b"A"]))
def test_any_whole_frame_decodes_and_encodes_back_to_itself(header: bytes, offset: int,
                                                           chunk: bytes, fill: bytes) -> None:
    body = bytearray(fill * protocol.BODY_SIZE)
    body[offset:offset + len(chunk)] = chunk
    frame = header + bytes(body[:protocol.BODY_SIZE])
    message = protocol.decode(frame)
    assert message.encode() == frame
    message.exchange()
    message.ip_info()
    message.delete_key()
    message.enumerate_index()


_POLICY = {}


def _policy() -> Policy:
    if "p" not in _POLICY:
        directory = tempfile.mkdtemp(prefix="kvp-hyp.")
        platform = StaticPlatform("hn0: flags=8843<UP> metric 0 mtu 1500\n"
                                  "\tether 00:15:5d:00:00:01\n\tinet 10.0.0.4 netmask"
                                  " 0xffffff00\n")
        _POLICY["p"] = Policy(Pools(directory), platform, set_ip=False)
    return _POLICY["p"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.integers(0, 255), pool=st.integers(0, 255),
       payload=st.binary(max_size=protocol.BODY_SIZE))
def test_any_request_gets_one_whole_answer_and_never_an_exception(op: int, pool: int,
                                                                   payload: bytes) -> None:
    frame = protocol.request(op, pool, payload)
    reply = _policy().answer(protocol.decode(frame))
    assert len(reply) == protocol.MESSAGE_SIZE
    assert protocol.answer_error(reply) in {int(s) for s in Status}


@settings(max_examples=300)
@given(op=st.integers(0, 7), pool=st.integers(0, 6),
       payload=st.binary(max_size=protocol.BODY_SIZE))
def test_the_simulated_driver_converts_any_host_message_to_one_daemon_message(
        op: int, pool: int, payload: bytes) -> None:
    host = bytes([op, pool]) + payload
    user = hyperv_kvp.host_to_user(host + bytes(protocol.MESSAGE_SIZE - len(host)), {})
    assert len(user) == protocol.MESSAGE_SIZE
    assert user[0] == op and user[1] == pool
    back, error = hyperv_kvp.user_to_host(user, host + bytes(protocol.MESSAGE_SIZE - len(host)))
    assert len(back) == protocol.MESSAGE_SIZE
    assert error in (0, 22)


@given(st.text(max_size=300))
def test_keys_and_values_survive_the_drivers_utf16_round_trip_within_the_bmp(text: str) -> None:
    # unicode.h's surrogate test, (u & 0xdc00) == 0xd800 or 0xdc00, also takes U+F800-U+FFFF
    bmp = "".join(c for c in text if ord(c) < 0xD800 or 0xE000 <= ord(c) < 0xF800
                  if c != "\0")
    units = list(struct.unpack(f"<{len(bmp.encode('utf-16-le')) // 2}H",
                               bmp.encode("utf-16-le")))
    data, count = hyperv_kvp.utf16_to_utf8(units, 4096)
    assert data == bmp.encode("utf-8") and count == len(data)
    back, _ = hyperv_kvp.utf8_to_utf16(data, 4096)
    assert back == units


def test_characters_outside_the_bmp_are_dropped_as_unicode_h_drops_them() -> None:
    units = list(struct.unpack("<4H", "a\U0001F600b".encode("utf-16-le")))
    assert hyperv_kvp.utf16_to_utf8(units, 100) == (b"ab", 2)
    # and so are U+F800-U+FFFF, which its surrogate test mistakes for surrogates
    assert hyperv_kvp.utf16_to_utf8([0x61, 0xF900, 0xFFFD, 0x62], 100) == (b"ab", 2)


def test_utf16_to_utf8_stops_writing_at_its_limit_but_goes_on_counting() -> None:
    data, count = hyperv_kvp.utf16_to_utf8([0x41] * 10, 4)
    assert data == b"AAAA" and count == 10
