"""The 64-byte hv_vss_opt_msg and the ioctl numbers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvbsd.vss import protocol
from hvbsd.vss.protocol import Op, Status


def test_freeze_request_encodes_to_the_golden_bytes():
    frame = protocol.encode(Op.FREEZE, Status.SUCCESS, 0x0123456789ABCDEF)
    golden = (bytes.fromhex("02000000" "00000000" "efcdab8967452301") + bytes(48))
    assert frame == golden
    assert len(frame) == 64


def test_fail_answer_to_thaw_encodes_status_one_little_endian():
    frame = protocol.encode(Op.THAW, Status.FAIL, 1)
    assert frame[:16] == bytes.fromhex("03000000" "01000000" "0100000000000000")
    assert frame[16:] == bytes(48)


def test_reply_echoes_op_and_msgid_and_zeroes_reserved_bytes():
    request = protocol.decode(struct.pack("<IIQ48s", 1, 0, 77, b"\xff" * 48))
    assert request.reserved == b"\xff" * 48
    answer = protocol.decode(request.reply(Status.FAIL))
    assert (answer.op, answer.status, answer.msgid) == (Op.CHECK, Status.FAIL, 77)
    assert answer.reserved == bytes(48)


def test_op_and_status_codes_match_hv_snapshot_h():
    assert [int(op) for op in (Op.NONE, Op.CHECK, Op.FREEZE, Op.THAW, Op.COUNT)] == [0, 1, 2, 3, 4]
    assert (int(Status.SUCCESS), int(Status.FAIL)) == (0, 1)


@pytest.mark.parametrize("size", [0, 16, 63, 65, 128])
def test_decode_refuses_a_frame_that_is_not_64_bytes(size):
    with pytest.raises(protocol.ProtocolError, match=f"frame of {size} bytes"):
        protocol.decode(bytes(size))


@pytest.mark.parametrize(("field", "args"), [
    ("op", (1 << 32, 0, 0)), ("status", (0, -1, 0)), ("msgid", (0, 0, 1 << 64))])
def test_encode_refuses_values_that_do_not_fit_their_field(field, args):
    with pytest.raises(protocol.ProtocolError, match=field):
        protocol.encode(*args)


def test_unknown_op_survives_decoding_and_is_named():
    message = protocol.decode(protocol.encode(9, 0, 5))
    assert message.op == 9 and message.op_name == "op 9"


def test_msgid_of_a_short_frame_needs_sixteen_bytes():
    frame = protocol.encode(Op.CHECK, 0, 4242)
    assert protocol.partial_msgid(frame[:16]) == 4242
    assert protocol.partial_msgid(frame[:15]) is None


@given(op=st.integers(0, 2**32 - 1), status=st.integers(0, 2**32 - 1),
       msgid=st.integers(0, 2**64 - 1))
def test_encode_then_decode_gives_back_every_field(op, status, msgid):
    message = protocol.decode(protocol.encode(op, status, msgid))
    assert (message.op, message.status, message.msgid) == (op, status, msgid)


def test_ioctl_numbers_equal_the_ioccom_arithmetic():
    # sys/sys/ioccom.h _IOC: dir | (len & 0x1fff) << 16 | group << 8 | number
    assert protocol.IOCHVVSSREAD == 0x40000000 | (64 << 16) | (0x76 << 8) | 2 == 0x40407602
    assert protocol.IOCHVVSSWRITE == 0x80000000 | (64 << 16) | (0x76 << 8) | 3 == 0x80407603
    assert protocol.UFSSUSPEND == 0x80000000 | (8 << 16) | (0x55 << 8) | 1 == 0x80085501
    assert protocol.UFSRESUME == 0x20000000 | (0x55 << 8) | 2 == 0x20005502


def test_ioctl_length_is_masked_to_thirteen_bits_like_ioccom():
    assert protocol.iow("v", 1, 0x2000 + 8) == protocol.iow("v", 1, 8)


def test_handshake_frames_say_registered_or_busy_with_op_none():
    registered = protocol.decode(protocol.handshake(busy=False))
    busy = protocol.decode(protocol.handshake(busy=True))
    assert (registered.op, registered.status) == (Op.NONE, 0)
    assert (busy.op, busy.status) == (Op.NONE, 1)
