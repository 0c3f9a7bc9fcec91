"""Channel selection, the simulated device's records, and bounded writes."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvbsd.vss import channel, protocol, simwire
from hvbsd.vss.protocol import Op


def one_shot_kernel(path, first: bytes, close: bool = False, kind=simwire.DEVICE_SOCKET_TYPE):
    """Accept one connection and send ``first`` as one record."""
    listener = socket.socket(socket.AF_UNIX, kind)
    listener.bind(path)
    listener.listen(1)
    held = []

    def serve():
        sock, _ = listener.accept()
        held.append(sock)
        sock.send(first)
        if close:
            sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, held, thread


def test_socket_path_selects_the_socket_channel(lab):
    listener, _held, _ = one_shot_kernel(lab.kernel_path, simwire.open_record(0))
    chan = channel.open_channel(lab.kernel_path, "fs")
    assert isinstance(chan, channel.SocketChannel)
    chan.close()
    listener.close()


def test_ebusy_from_open_raises_channel_busy_naming_the_path(lab):
    listener, _, _ = one_shot_kernel(lab.kernel_path, simwire.open_record(errno.EBUSY),
                                     close=True)
    with pytest.raises(channel.ChannelBusy, match=f"{lab.kernel_path}: device busy"):
        channel.open_channel(lab.kernel_path, "fs")
    listener.close()


@pytest.mark.parametrize(("first", "complaint"), [
    (simwire.encode_record(simwire.KIND_POLLIN), "is not the result of open"),
    (protocol.encode(Op.NONE, 0, 0), r"first record \(64 bytes\) is not the result of open"),
    (simwire.encode_record(simwire.KIND_OPEN, protocol.encode(Op.NONE, 7, 0)),
     "open failed with status 7"),
])
def test_bad_handshakes_are_refused_with_the_reason(lab, first, complaint):
    listener, _, _ = one_shot_kernel(lab.kernel_path, first, close=True)
    with pytest.raises(channel.ChannelError, match=complaint):
        channel.open_channel(lab.kernel_path, "fs")
    listener.close()


def test_a_kernel_side_that_closes_before_its_handshake_is_named(lab):
    listener = socket.socket(socket.AF_UNIX, simwire.DEVICE_SOCKET_TYPE)
    listener.bind(lab.kernel_path)
    listener.listen(1)
    threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True).start()
    with pytest.raises(channel.ChannelError, match="closed the connection before its handshake"):
        channel.open_channel(lab.kernel_path, "fs")
    listener.close()


def test_a_stream_socket_at_the_device_path_is_refused(lab):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(lab.kernel_path)
    listener.listen(1)
    with pytest.raises(channel.ChannelError, match="not a simulated VSS device"):
        channel.open_channel(lab.kernel_path, "fs")
    listener.close()


def test_pollin_is_followed_by_the_read_ioctl_and_hands_over_the_request(lab, kernel):
    chan = channel.open_channel(lab.kernel_path, "fs")
    kernel.wait_connected()
    msgid = kernel.post(Op.FREEZE)
    server = threading.Thread(target=_serve_one_read, args=(kernel,))
    server.start()
    got = _receive_some(chan)
    server.join(5)
    assert [(m.op, m.status, m.msgid) for m in got] == [(Op.FREEZE, 0, msgid)]
    chan.send(got[0].reply(protocol.Status.SUCCESS))
    answer = kernel.read_frame(5)
    assert (answer.op, answer.status, answer.msgid) == (Op.FREEZE, 0, msgid)
    chan.close()


def _receive_some(chan, tries: int = 200):
    import select

    for _ in range(tries):
        select.select([chan.fileno()], [], [], 0.05)
        received = chan.receive()
        if received:
            return received
    return []


def test_a_read_after_the_request_went_is_empty_status_1_msgid_0(lab, kernel):
    chan = channel.open_channel(lab.kernel_path, "fs")
    kernel.wait_connected()
    kernel.client.send(simwire.encode_record(simwire.KIND_POLLIN))  # rung, nothing queued
    got = []
    reader = threading.Thread(target=lambda: got.extend(_receive_some(chan)))
    reader.start()
    kernel.client.settimeout(5)
    record = kernel.client.recv(simwire.DEVICE_RECORD_SIZE + 1)
    assert simwire.decode_record(record)[0] == simwire.KIND_READ
    kernel.client.send(simwire.encode_record(simwire.KIND_READ,
                                             protocol.encode(Op.NONE, 1, 0)))
    reader.join(5)
    assert [(m.status, m.msgid) for m in got] == [(1, 0)]
    chan.close()


JUNK = st.binary(min_size=1, max_size=200).filter(
    lambda data: simwire.decode_record(data) is None)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(JUNK, min_size=1, max_size=5), msgid=st.integers(1, (1 << 64) - 1))
def test_no_fragment_or_junk_record_can_shift_the_next_request(lab, junk, msgid):
    kernel = simwire.DeviceKernelSide(lab.kernel_path + ".h")
    try:
        chan = channel.open_channel(lab.kernel_path + ".h", "fs")
        kernel.wait_connected()
        for data in junk:
            kernel.send_raw(data)
        kernel.post(Op.CHECK, msgid=msgid)
        got = []
        reader = threading.Thread(target=lambda: got.extend(_collect(chan, len(junk) + 1)))
        reader.start()
        _serve_one_read(kernel)
        reader.join(5)
        shorts = [item for item in got if isinstance(item, channel.ShortFrame)]
        messages = [item for item in got if isinstance(item, protocol.Message)]
        assert [s.data for s in shorts] == [data[:channel.MAX_SHORT_FRAME] for data in junk]
        assert [(m.op, m.msgid) for m in messages] == [(Op.CHECK, msgid)]
        chan.close()
    finally:
        kernel.close()
        import os
        os.unlink(lab.kernel_path + ".h")


def _collect(chan, count: int):
    received = []
    for _ in range(100):
        received += _receive_some(chan, tries=1)
        if len(received) >= count:
            break
    return received


def _serve_one_read(kernel) -> None:
    kernel.client.settimeout(5)
    record = kernel.client.recv(simwire.DEVICE_RECORD_SIZE + 1)
    assert simwire.decode_record(record)[0] == simwire.KIND_READ
    kernel.client.send(simwire.encode_record(simwire.KIND_READ, kernel.pending))


def test_a_write_to_a_kernel_side_that_stops_reading_fails_in_bounded_time(lab, kernel):
    chan = channel.SocketChannel(lab.kernel_path, "fs", write_seconds=0.2)
    kernel.wait_connected()
    frame = protocol.encode(Op.FREEZE, 0, 1)
    with pytest.raises(channel.ChannelError, match=r"took nothing for 0\.2 s"):
        for _ in range(100000):  # the socket's buffer fills; then the bound applies
            chan.send(frame)
    assert not chan.closed  # the caller may go on serving
    # while the peer still reads nothing, further writes fail at once
    with pytest.raises(channel.ChannelError, match="record not delivered"):
        chan.send(frame)
    # once it drains, writes go through again
    kernel.client.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while kernel.client.recv(100):
            pass
    chan.send(frame)
    chan.close()


def test_an_answer_that_is_not_64_bytes_is_refused_before_it_reaches_the_wire(lab, kernel):
    chan = channel.open_channel(lab.kernel_path, "fs")
    with pytest.raises(channel.ChannelError, match="an answer is 64 bytes, not 10"):
        chan.send(b"x" * 10)
    chan.close()


def test_regular_file_selects_the_device_channel_and_ioctl_errors_are_named(tmp_path):
    not_a_device = tmp_path / "hv_fsvss_dev"
    not_a_device.write_bytes(b"")
    chan = channel.open_channel(str(not_a_device), "fs")
    assert isinstance(chan, channel.DeviceChannel)
    with pytest.raises(channel.ChannelError, match="IOCHVVSSREAD failed"):
        chan.receive()
    chan.close()


def test_missing_device_is_named_in_the_error(tmp_path):
    with pytest.raises(channel.ChannelError, match="no_dev: no such device"):
        channel.open_channel(str(tmp_path / "no_dev"), "fs")


@pytest.mark.parametrize("code", [protocol.IOCHVVSSWRITE, protocol.UFSSUSPEND,
                                  protocol.UFSRESUME])
def test_high_bit_ioctl_numbers_reach_the_kernel_instead_of_overflowing(tmp_path, code):
    import fcntl
    import os
    fd = os.open(tmp_path / "plain", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OSError) as caught:
            fcntl.ioctl(fd, code, bytes(64))
        assert caught.value.errno == errno.ENOTTY  # the kernel saw the request
    finally:
        os.close(fd)
