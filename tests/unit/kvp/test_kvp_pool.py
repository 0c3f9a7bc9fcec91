"""The pool files: the stock daemon's format and lock, and hostile files refused."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd.kvp import pool as kvp_pool
from hvbsd.kvp.pool import PoolError, Pools


def test_records_are_the_stock_daemons_struct_kvp_record(tmp_path: Path) -> None:
    pools = Pools(str(tmp_path / "pool"))
    pools.set(0, b"Alpha", b"one")
    pools.set(0, b"Beta", b"two")
    pools.set(0, b"Alpha", b"uno")
    data = (tmp_path / "pool/.kvp_pool_0").read_bytes()
    assert len(data) == 2 * 2560
    assert data[:6] == b"Alpha\0" and data[512:516] == b"uno\0"
    assert data[2560:2565] == b"Beta\0"
    assert sorted(os.listdir(tmp_path / "pool")) == [f".kvp_pool_{n}" for n in range(5)]
    assert pools.entry(0, 1) == (b"Beta", b"two") and pools.entry(0, 2) is None


def test_a_file_written_by_the_stock_daemon_is_read_and_a_partial_record_ignored(
        tmp_path: Path) -> None:
    (tmp_path / "pool").mkdir()
    record = b"Key".ljust(512, b"\0") + b"Value".ljust(2048, b"\0")
    (tmp_path / "pool/.kvp_pool_1").write_bytes(record + b"partial")
    pools = Pools(str(tmp_path / "pool"))
    assert pools.records(1) == [(b"Key", b"Value")]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "hardlink"])
def test_a_pool_file_that_is_not_a_plain_file_is_refused_and_nothing_outside_written(
        tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "pool"
    directory.mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    target = directory / ".kvp_pool_3"
    if kind == "symlink":
        target.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        os.link(outside, target)
    with pytest.raises(PoolError) as raised:
        Pools(str(directory))
    assert ".kvp_pool_3" in str(raised.value)
    assert outside.read_bytes() == b"precious"


def test_an_oversized_pool_file_is_refused_not_read(tmp_path: Path) -> None:
    pools = Pools(str(tmp_path / "pool"))
    with open(tmp_path / "pool/.kvp_pool_0", "r+b") as stream:
        stream.truncate((kvp_pool.MAX_RECORDS + 1) * kvp_pool.RECORD_SIZE)
    with pytest.raises(PoolError, match="more than 1024 records"):
        pools.get(0, b"x")


def test_a_full_pool_refuses_one_more_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(kvp_pool, "MAX_RECORDS", 3)
    pools = Pools(str(tmp_path / "pool"))
    for key in (b"a", b"b", b"c"):
        pools.set(0, key, b"v")
    with pytest.raises(PoolError, match="full"):
        pools.set(0, b"d", b"v")
    pools.set(0, b"a", b"replaced")  # replacing still works
    assert pools.get(0, b"a") == b"replaced"


def test_an_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PoolError, match="empty key"):
        Pools(str(tmp_path / "pool")).set(0, b"", b"v")


LOCKER = """
import fcntl, sys, time
fd = open(sys.argv[1], "r+b")
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _locker(path: Path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_lock_held_by_another_process_is_waited_for_then_refused(tmp_path: Path) -> None:
    pools = Pools(str(tmp_path / "pool"), lock_seconds=0.5)
    holder = _locker(tmp_path / "pool/.kvp_pool_0", 30)
    try:
        with pytest.raises(PoolError, match="holds its lock"):
            pools.set(0, b"k", b"v")
    finally:
        holder.kill()
        holder.wait()
    pools.set(0, b"k", b"v")
    assert pools.get(0, b"k") == b"v"


def test_a_short_lock_by_another_process_only_delays_the_write(tmp_path: Path) -> None:
    pools = Pools(str(tmp_path / "pool"), lock_seconds=10)
    holder = _locker(tmp_path / "pool/.kvp_pool_0", 0.3)
    try:
        pools.set(0, b"k", b"v")
    finally:
        holder.wait()
    assert pools.get(0, b"k") == b"v"


def test_the_lock_is_the_stock_daemons_fcntl_lock_other_readers_can_take(
        tmp_path: Path) -> None:
    pools = Pools(str(tmp_path / "pool"))
    pools.set(4, b"k", b"v")
    with open(tmp_path / "pool/.kvp_pool_4", "r+b") as stream:
        fcntl.lockf(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free between requests
        fcntl.lockf(stream, fcntl.LOCK_UN)


def test_a_pool_file_removed_behind_the_daemons_back_is_created_again(tmp_path: Path) -> None:
    pools = Pools(str(tmp_path / "pool"))
    pools.set(0, b"k", b"v")
    os.unlink(tmp_path / "pool/.kvp_pool_0")
    assert pools.get(0, b"k") is None
    pools.set(0, b"k2", b"v2")
    assert (tmp_path / "pool/.kvp_pool_0").stat().st_size == 2560
