"""Channel selection, the socket handshake and frame reassembly."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from hvbsd.vss import channel, protocol
from hvbsd.vss.protocol import Op


def one_shot_kernel(path, first: bytes, then: bytes = b"", close: bool = False):
    """Accept one connection, send ``first`` (and ``then`` a little later)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    held = []

    def serve():
        sock, _ = listener.accept()
        held.append(sock)
        sock.sendall(first)
        if then:
            time.sleep(0.05)
            sock.sendall(then)
        if close:
            sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, held, thread


def test_socket_path_selects_the_socket_channel(lab):
    listener, _held, _ = one_shot_kernel(lab.kernel_path, protocol.handshake(busy=False))
    chan = channel.open_channel(lab.kernel_path, "fs")
    assert isinstance(chan, channel.SocketChannel)
    chan.close()
    listener.close()


def test_busy_handshake_raises_channel_busy_naming_the_path(lab):
    listener, _, _ = one_shot_kernel(lab.kernel_path, protocol.handshake(busy=True), close=True)
    with pytest.raises(channel.ChannelBusy, match=f"{lab.kernel_path}: device busy"):
        channel.open_channel(lab.kernel_path, "fs")
    listener.close()


@pytest.mark.parametrize(("first", "complaint"), [
    (protocol.encode(Op.CHECK, 0, 1), "handshake frame has CHECK, expected op NONE"),
    (protocol.encode(Op.NONE, 7, 0), "handshake status 7"),
    (b"\x00" * 10, "closed the connection before its handshake"),
])
def test_bad_handshakes_are_refused_with_the_reason(lab, first, complaint):
    listener, _, _ = one_shot_kernel(lab.kernel_path, first, close=True)
    with pytest.raises(channel.ChannelError, match=complaint):
        channel.open_channel(lab.kernel_path, "fs")
    listener.close()


def test_frames_split_across_writes_are_reassembled(lab):
    frame = protocol.encode(Op.FREEZE, 0, 99)
    listener, _held, thread = one_shot_kernel(
        lab.kernel_path, protocol.handshake(False) + frame[:10], then=frame[10:] + frame)
    chan = channel.open_channel(lab.kernel_path, "fs")
    thread.join()
    received = []
    deadline = time.monotonic() + 3
    while len(received) < 2 and time.monotonic() < deadline:
        received += chan.receive()
        time.sleep(0.01)
    assert [(r.op, r.msgid) for r in received] == [(Op.FREEZE, 99), (Op.FREEZE, 99)]
    assert chan.deadline() is None
    chan.close()
    listener.close()


def test_unfinished_fragment_expires_as_a_short_frame(lab):
    listener, _held, thread = one_shot_kernel(
        lab.kernel_path, protocol.handshake(False) + protocol.encode(Op.THAW, 0, 5)[:20])
    chan = channel.open_channel(lab.kernel_path, "fs")
    thread.join()
    time.sleep(0.05)
    assert chan.receive() == []
    deadline = chan.deadline()
    assert deadline is not None
    assert chan.expire(deadline - 0.5) == []
    [short] = chan.expire(deadline)
    assert len(short.data) == 20 and short.msgid == 5
    chan.close()
    listener.close()


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
    import errno
    import fcntl
    import os
    fd = os.open(tmp_path / "plain", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OSError) as caught:
            fcntl.ioctl(fd, code, bytes(64))
        assert caught.value.errno == errno.ENOTTY  # the kernel saw the request
    finally:
        os.close(fd)
