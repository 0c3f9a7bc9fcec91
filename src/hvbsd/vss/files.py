"""Reading and writing files that somebody else may have tampered with.

Every file the daemon reads that it did not just write (its state file, a
pidfile) is opened with ``O_NONBLOCK | O_NOFOLLOW`` (a FIFO cannot hang it, a
symlink is not followed), must be a regular file, and is read up to a limit.

Every file it writes (state file, pidfile, the bundled executable) is written
to a new temporary file in the same directory, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an existing file or a symlink's
target), and renamed over the target; a target that exists and is not a
regular file (a device node, a directory, a symlink, a FIFO) is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from typing import List

#: what the daemon reads of a state file at most
STATE_LIMIT = 64 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class FileRefused(OSError):
    """The path is not something we read or replace (not a regular file, too big)."""


def read_bounded(path: str, limit: int) -> bytes:
    """The content of the regular file ``path``, refusing more than ``limit`` bytes.

    Raises FileNotFoundError when it is missing, FileRefused when it is not a
    regular file (symlink, FIFO, device, directory) or is larger than
    ``limit``, OSError otherwise.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        # O_NOFOLLOW on a symlink: ELOOP on Linux, EMLINK on FreeBSD (open(2))
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise FileRefused(exc.errno, f"{path} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(0, f"{path} is not a regular file")
        chunks: List[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileRefused(0, f"{path} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_target(path: str) -> None:
    """Refuse (FileRefused) a ``path`` that exists and is not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise FileRefused(0, f"{path} is a symbolic link; refusing to replace it")
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise FileRefused(0, f"{path} is {kind}; refusing to replace it")


def _temp_name(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")


def write_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` by a file holding ``data``, or leave everything as it was.

    The temporary file is created exclusively (never through a symlink) in
    the directory of ``path`` and renamed over it; on any failure it is
    removed and the OSError (FileRefused for a target that is not a regular
    file) is raised.
    """
    check_target(path)
    temporary = _temp_name(path)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                 mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)  # whatever the umask
        finally:
            os.close(fd)
        check_target(path)  # it may have changed while we wrote
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_stale_temporaries(path: str) -> List[str]:
    """Remove temporaries of ``path`` left by a writer that was killed; their names."""
    directory, name = os.path.split(path)
    pattern = re.compile(r"\." + re.escape(name) + r"\.[0-9a-f]{16}\.tmp\Z")
    removed = []
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    for entry in entries:
        if not pattern.match(entry):
            continue
        full = os.path.join(directory, entry)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)
                removed.append(full)
    return removed
