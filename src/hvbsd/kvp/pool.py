"""The KVP pools: ``/var/db/hyperv/pool/.kvp_pool_0`` ... ``.kvp_pool_4``.

The files are the ones FreeBSD's stock daemon keeps
(``contrib/hyperv/tools/hv_kvp_daemon.c``, ``kvp_file_init``): one per pool,
an array of ``struct kvp_record { char key[512]; char value[2048]; }``
(2560 bytes each, NUL-padded C strings), read in whole records (a partial
trailing record is ignored, as fread(3) of whole records does), and guarded by
a POSIX write lock over the whole file on a descriptor held open
(``kvp_acquire_lock``: ``fcntl(F_SETLKW, F_WRLCK)``). Other tools that follow
that protocol can share the files with this daemon; the file is rewritten in
place under the lock (``kvp_update_file``), never replaced, so a lock another
process holds stays on the file everybody uses.

Where the stock daemon trusts the files, this module does not:

- the directory is opened with ``O_DIRECTORY | O_NOFOLLOW`` and every file
  relative to it (``dir_fd``) with ``O_NOFOLLOW | O_NONBLOCK``, so nothing
  outside the pool directory is ever opened, created or written, and a
  symlink, FIFO or device in its place is refused (``PoolError``);
- a file with more than one hard link is refused (our writes would land in
  another file);
- a file larger than ``MAX_RECORDS`` records is refused, not read;
- the lock is waited for at most ``LOCK_SECONDS`` (the driver gives up on the
  daemon after 5 s anyway), then the request fails;
- one lock covers a whole read-modify-write (the stock daemon takes it twice);
- keys are compared as C strings, whole (the stock daemon compares the first
  ``key_size`` bytes, a length the driver derives from the UTF-16 size).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from typing import Dict, Iterator, List, Optional, Tuple

from hvbsd.kvp.protocol import MAX_KEY_SIZE, MAX_VALUE_SIZE, POOL_COUNT, cstring, fit

POOL_DIR = "/var/db/hyperv/pool"
RECORD_SIZE = MAX_KEY_SIZE + MAX_VALUE_SIZE  # sizeof(struct kvp_record)
#: records a pool may hold; a larger file is refused (2.5 MiB)
MAX_RECORDS = 1024
LOCK_SECONDS = 2.0
#: the stock daemon's modes: mkdir and open with S_IRUSR | S_IWUSR | S_IROTH
FILE_MODE = 0o604
#: the directory gets search permission too (0604 leaves it unusable for non-root)
DIR_MODE = 0o755

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

Record = Tuple[bytes, bytes]


class PoolError(Exception):
    """A pool that cannot be used; the message names the file and why."""


def file_name(pool: int) -> str:
    return f".kvp_pool_{pool}"


def parse_records(data: bytes) -> List[Record]:
    """The records of a pool file's content: (key, value) C strings, in order."""
    records = []
    for offset in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        key = cstring(data[offset:offset + MAX_KEY_SIZE])
        value = cstring(data[offset + MAX_KEY_SIZE:offset + RECORD_SIZE])
        records.append((key, value))
    return records


def pack_records(records: List[Record]) -> bytes:
    return b"".join(fit(key, MAX_KEY_SIZE) + fit(value, MAX_VALUE_SIZE)
                    for key, value in records)


class Pools:
    """The five pool files of one directory, each opened once and locked per access."""

    def __init__(self, directory: str = POOL_DIR, lock_seconds: float = LOCK_SECONDS) -> None:
        self.directory = directory
        self.lock_seconds = lock_seconds
        self._fds: Dict[int, int] = {}
        try:
            os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        except FileExistsError:
            pass  # a symlink or a file: refused just below
        except OSError as exc:
            raise PoolError(f"{directory}: cannot create: {exc.strerror}") from None
        try:
            self._dir = os.open(directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            # O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR on Linux, ELOOP/EMLINK elsewhere
            why = ("is a symbolic link" if os.path.islink(directory)
                   or exc.errno in (errno.ELOOP, errno.EMLINK)
                   else "is not a directory" if exc.errno == errno.ENOTDIR
                   else exc.strerror)
            raise PoolError(f"{directory}: {why}; refusing to use it as the pool directory"
                            ) from None
        try:
            for pool in range(POOL_COUNT):
                self._fds[pool] = self._open(pool)
        except PoolError:
            self.close()
            raise

    def path(self, pool: int) -> str:
        return os.path.join(self.directory, file_name(pool))

    def _open(self, pool: int) -> int:
        name = file_name(pool)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC,
                         FILE_MODE, dir_fd=self._dir)
        except OSError as exc:
            why = ("is a symbolic link" if exc.errno in (errno.ELOOP, errno.EMLINK)
                   else exc.strerror)
            raise PoolError(f"{self.path(pool)}: {why}; refusing it") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise PoolError(f"{self.path(pool)} is not a regular file; refusing it")
        if st.st_nlink > 1:
            # a hard link would let our writes land in some other file
            os.close(fd)
            raise PoolError(f"{self.path(pool)} has {st.st_nlink} links; refusing it")
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        if getattr(self, "_dir", -1) >= 0:
            with contextlib.suppress(OSError):
                os.close(self._dir)
            self._dir = -1

    def _fd(self, pool: int) -> int:
        if pool not in self._fds:
            raise PoolError(f"pool {pool} does not exist (pools are 0 to {POOL_COUNT - 1})")
        fd = self._fds[pool]
        if os.fstat(fd).st_nlink == 0:
            # removed behind our back: use (and create) the file that is there now
            os.close(fd)
            self._fds[pool] = fd = self._open(pool)
        return fd

    @contextlib.contextmanager
    def _locked(self, pool: int) -> Iterator[int]:
        fd = self._fd(pool)
        deadline = time.monotonic() + self.lock_seconds
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise PoolError(f"{self.path(pool)}: cannot lock: {exc.strerror}"
                                    ) from None
            if time.monotonic() >= deadline:
                raise PoolError(f"{self.path(pool)}: another process holds its lock"
                                f" for more than {self.lock_seconds:g} s")
            time.sleep(0.01)
        try:
            yield fd
        finally:
            with contextlib.suppress(OSError):
                fcntl.lockf(fd, fcntl.LOCK_UN)

    def _read(self, pool: int, fd: int) -> List[Record]:
        size = os.fstat(fd).st_size
        if size > MAX_RECORDS * RECORD_SIZE:
            raise PoolError(f"{self.path(pool)} holds {size} bytes, more than"
                            f" {MAX_RECORDS} records; refusing to read it")
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(1 << 20, size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return parse_records(b"".join(chunks))

    def _write(self, fd: int, records: List[Record]) -> None:
        data = pack_records(records)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)

    def records(self, pool: int) -> List[Record]:
        with self._locked(pool) as fd:
            return self._read(pool, fd)

    def get(self, pool: int, key: bytes) -> Optional[bytes]:
        key = cstring(key)
        for name, value in self.records(pool):
            if name == key:
                return value
        return None

    def set(self, pool: int, key: bytes, value: bytes) -> None:
        """Add or replace ``key``; PoolError when the pool is full or cannot be used."""
        key = cstring(key)[:MAX_KEY_SIZE - 1]
        value = cstring(value)[:MAX_VALUE_SIZE - 1]
        if not key:
            raise PoolError("an empty key cannot be stored")
        with self._locked(pool) as fd:
            records = self._read(pool, fd)
            for position, (name, _) in enumerate(records):
                if name == key:
                    records[position] = (key, value)
                    break
            else:
                if len(records) >= MAX_RECORDS:
                    raise PoolError(f"{self.path(pool)} is full ({MAX_RECORDS} records)")
                records.append((key, value))
            self._write(fd, records)

    def delete(self, pool: int, key: bytes) -> bool:
        key = cstring(key)
        with self._locked(pool) as fd:
            records = self._read(pool, fd)
            kept = [record for record in records if record[0] != key]
            if len(kept) == len(records):
                return False
            self._write(fd, kept)
            return True

    def entry(self, pool: int, index: int) -> Optional[Record]:
        records = self.records(pool)
        return records[index] if 0 <= index < len(records) else None
