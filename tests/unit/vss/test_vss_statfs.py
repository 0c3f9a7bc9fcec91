"""getfsstat(2) buffers in the FreeBSD 12+ struct statfs layout."""

from __future__ import annotations

import struct

import pytest

from hvbsd.vss import platform
from hvbsd.vss.mounts import Mount

# offsets from sys/sys/mount.h (struct statfs), written out independently of the parser
SIZE = 2344
OFF_VERSION, OFF_FLAGS, OFF_FSID = 0, 8, 192
OFF_FSTYPENAME, OFF_MNTFROMNAME, OFF_MNTONNAME = 280, 296, 1320


def entry(fsid, fstype, mount_from, mount_on, flags=0, version=0x20140518) -> bytes:
    buf = bytearray(SIZE)
    struct.pack_into("<I", buf, OFF_VERSION, version)
    struct.pack_into("<Q", buf, OFF_FLAGS, flags)
    struct.pack_into("<2i", buf, OFF_FSID, *fsid)
    buf[OFF_FSTYPENAME:OFF_FSTYPENAME + len(fstype)] = fstype.encode()
    buf[OFF_MNTFROMNAME:OFF_MNTFROMNAME + len(mount_from)] = mount_from.encode()
    buf[OFF_MNTONNAME:OFF_MNTONNAME + len(mount_on)] = mount_on.encode()
    return bytes(buf)


def test_struct_statfs_is_2344_bytes():
    assert platform.STATFS_SIZE == SIZE


def test_synthetic_getfsstat_buffer_parses_back_exactly():
    buffer = (entry((0x4a1b, -7), "ufs", "/dev/gpt/rootfs", "/", flags=0x1000)
              + entry((1, 2), "devfs", "devfs", "/dev")
              + entry((-2147483648, 2147483647), "zfs", "zroot/var/log", "/var/log",
                      flags=0x1)
              + b"\xee" * 100)  # room the kernel did not fill
    mounts = platform.parse_statfs(buffer, 3)
    assert mounts == [
        Mount((0x4a1b, -7), "ufs", "/", "/dev/gpt/rootfs", read_only=False),
        Mount((1, 2), "devfs", "/dev", "devfs", read_only=False),
        Mount((-2147483648, 2147483647), "zfs", "/var/log", "zroot/var/log", read_only=True),
    ]


def test_longest_names_fill_their_fields_up_to_the_terminating_nul():
    long_on = "/" + "m" * 1022
    long_type = "f" * 15
    mounts = platform.parse_statfs(entry((3, 4), long_type, "x" * 1023, long_on))
    assert mounts[0].mount_on == long_on and mounts[0].fstype == long_type
    assert mounts[0].mount_from == "x" * 1023


def test_builder_and_parser_agree_with_the_documented_offsets():
    mount = Mount((5, 6), "ufs", "/usr/local", "/dev/da1p1", read_only=True)
    assert platform.build_statfs(mount) == entry((5, 6), "ufs", "/dev/da1p1", "/usr/local",
                                                 flags=0x1)


def test_unknown_statfs_version_is_refused_not_guessed():
    buffer = entry((1, 1), "ufs", "/dev/ada0s1a", "/", version=0x20030518)
    with pytest.raises(platform.PlatformError, match="f_version 0x20030518") as caught:
        platform.parse_statfs(buffer)
    assert caught.value.errno_name == "EINVAL"


def test_buffer_shorter_than_the_count_is_refused():
    with pytest.raises(platform.PlatformError, match="too short for 2 entries"):
        platform.parse_statfs(entry((1, 1), "ufs", "a", "/"), 2)


def test_freebsd_platform_refuses_to_start_without_getfsstat():
    with pytest.raises(platform.PlatformError, match="getfsstat"):
        platform.FreeBSDPlatform("libc.so.6")
