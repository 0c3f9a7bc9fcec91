"""What the guest's kernel offers for a freeze: the mount table and UFS suspension.

``FreeBSDPlatform`` is the real guest: getfsstat(2) through ctypes, one
descriptor of ``/dev/ufssuspend`` per suspended filesystem (the kernel binds a
suspension to the descriptor, so a second UFSSUSPEND on the same descriptor
fails with EBUSY), resume by UFSRESUME and close, ``zpool sync`` for ZFS.

``SimPlatform`` speaks :mod:`hvbsd.vss.simwire` to the simulator's
filesystem service, one connection per suspended filesystem.

The policy sees only the ``Platform`` interface.
"""

from __future__ import annotations

import abc
import ctypes
import errno
import fcntl
import os
import socket
import struct
import subprocess
from typing import List, Optional, Sequence

from hvbsd.vss import protocol, simwire
from hvbsd.vss.mounts import Mount, errno_name

UFSSUSPEND_PATH = "/dev/ufssuspend"
ZPOOL = "/sbin/zpool"
ZPOOL_SECONDS = 10.0

# sys/sys/mount.h, FreeBSD 12 and later
STATFS_VERSION = 0x20140518
MNT_RDONLY = 0x1
MNT_NOWAIT = 2
MFSNAMELEN = 16
MNAMELEN = 1024
STATFS_FORMAT = "<IIQQQQQqQqQQQQII9QII2i80s16s1024s1024s"
STATFS = struct.Struct(STATFS_FORMAT)
STATFS_SIZE = STATFS.size  # 2344
_FIELD = {name: index for index, name in enumerate((
    "f_version", "f_type", "f_flags", "f_bsize", "f_iosize", "f_blocks", "f_bfree",
    "f_bavail", "f_files", "f_ffree", "f_syncwrites", "f_asyncwrites", "f_syncreads",
    "f_asyncreads", "f_nvnodelistsize", "f_spare0",
    *(f"f_spare{i}" for i in range(1, 10)),
    "f_namemax", "f_owner", "fsid0", "fsid1", "f_charspare", "f_fstypename",
    "f_mntfromname", "f_mntonname"))}


class PlatformError(Exception):
    """A kernel operation failed; ``errno_name`` is what the kernel said (EBUSY ...)."""

    def __init__(self, errno_name: str, message: str) -> None:
        super().__init__(message)
        self.errno_name = errno_name


class Suspension(abc.ABC):
    """One suspended filesystem, held until ``resume`` (or until the process dies)."""

    def __init__(self, mount: Mount) -> None:
        self.mount = mount

    @abc.abstractmethod
    def resume(self) -> None:
        """Resume the filesystem. Always releases it; raises PlatformError if the
        kernel reported a problem on the way."""


class Platform(abc.ABC):
    """The kernel services a freeze needs.

    ``timeout`` bounds a step where the platform can bound it (a child
    process, a socket); ``None`` means the platform's own limit.
    ``skipped`` holds why entries of the last mount listing were left out.
    """

    skipped: List[str]

    @abc.abstractmethod
    def list_mounts(self) -> List[Mount]: ...

    @abc.abstractmethod
    def suspend(self, mount: Mount, timeout: Optional[float] = None) -> Suspension:
        """Suspend writes to one UFS filesystem; PlatformError if the kernel refuses."""

    @abc.abstractmethod
    def sync(self, timeout: Optional[float] = None) -> None:
        """Flush every filesystem's dirty data (sync(2))."""

    @abc.abstractmethod
    def zpool_sync(self, pools: Sequence[str], timeout: Optional[float] = None) -> None:
        """Write the named pools' dirty data to the main pool storage."""

    def fd_mount(self, fd: int, mounts: Sequence[Mount]) -> Optional[Mount]:
        """The mount holding the file open on ``fd``, if the platform can tell."""
        return None


def _text(raw: bytes) -> str:
    return os.fsdecode(raw.split(b"\0", 1)[0])


def parse_statfs(buffer: bytes, count: Optional[int] = None,
                 skipped: Optional[List[str]] = None) -> List[Mount]:
    """Decode ``count`` consecutive ``struct statfs`` (FreeBSD 12+ layout).

    Refuses (PlatformError EINVAL) an entry whose ``f_version`` is not
    STATFS_VERSION: another layout would be misread silently. An entry that
    is laid out right but cannot be a mount (a relative mount point, an empty
    type, ...) is left out, and why is appended to ``skipped``.
    """
    if count is None:
        count = len(buffer) // STATFS_SIZE
    if len(buffer) < count * STATFS_SIZE:
        raise PlatformError("EINVAL", f"statfs buffer of {len(buffer)} bytes is too short"
                            f" for {count} entries of {STATFS_SIZE}")
    mounts = []
    for index in range(count):
        fields = STATFS.unpack_from(buffer, index * STATFS_SIZE)
        version = fields[_FIELD["f_version"]]
        if version != STATFS_VERSION:
            raise PlatformError(
                "EINVAL", f"struct statfs entry {index} has f_version {version:#x}; only"
                f" the FreeBSD 12+ layout {STATFS_VERSION:#x} is known, refusing to guess")
        try:
            mounts.append(Mount(
                fsid=(fields[_FIELD["fsid0"]], fields[_FIELD["fsid1"]]),
                fstype=_text(fields[_FIELD["f_fstypename"]]),
                mount_on=_text(fields[_FIELD["f_mntonname"]]),
                mount_from=_text(fields[_FIELD["f_mntfromname"]]),
                read_only=bool(fields[_FIELD["f_flags"]] & MNT_RDONLY)))
        except ValueError as exc:
            if skipped is not None:
                skipped.append(f"struct statfs entry {index} skipped: {exc}")
    return mounts


def build_statfs(mount: Mount, flags: int = 0, version: int = STATFS_VERSION) -> bytes:
    """One ``struct statfs`` laid out as the kernel fills it (used by tests)."""
    values: List[object] = [0] * len(_FIELD)
    values[_FIELD["f_version"]] = version
    values[_FIELD["f_flags"]] = flags | (MNT_RDONLY if mount.read_only else 0)
    values[_FIELD["fsid0"]], values[_FIELD["fsid1"]] = mount.fsid
    values[_FIELD["f_charspare"]] = b""
    values[_FIELD["f_fstypename"]] = os.fsencode(mount.fstype)[:MFSNAMELEN - 1]
    values[_FIELD["f_mntfromname"]] = os.fsencode(mount.mount_from)[:MNAMELEN - 1]
    values[_FIELD["f_mntonname"]] = os.fsencode(mount.mount_on)[:MNAMELEN - 1]
    return STATFS.pack(*values)


class _DescriptorSuspension(Suspension):
    def __init__(self, mount: Mount, fd: int) -> None:
        super().__init__(mount)
        self._fd = fd

    def resume(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        problem = None
        try:
            fcntl.ioctl(fd, protocol.UFSRESUME)
        except OSError as exc:
            problem = exc
        finally:
            os.close(fd)  # closing the descriptor resumes in any case
        if problem is not None:
            raise PlatformError(errno_name(problem.errno or 0),
                                f"UFSRESUME of {self.mount.mount_on}: {problem.strerror};"
                                " resumed by closing the descriptor")


class FreeBSDPlatform(Platform):
    """The real guest: libc's getfsstat, /dev/ufssuspend, zpool(8)."""

    def __init__(self, libc_name: str = "libc.so.7") -> None:
        try:
            self._libc = ctypes.CDLL(libc_name, use_errno=True)
            self._getfsstat = self._libc.getfsstat
        except (OSError, AttributeError) as exc:
            raise PlatformError("ENOSYS", f"{libc_name}: no getfsstat(2) ({exc});"
                                " FreeBSDPlatform needs FreeBSD") from None
        self._getfsstat.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
        self._getfsstat.restype = ctypes.c_int
        self.skipped = []
        self.list_mounts()  # refuse to start on a statfs layout we do not know

    def list_mounts(self) -> List[Mount]:
        # MNT_NOWAIT: cached data, never blocks on a suspended filesystem
        for _ in range(4):
            count = self._getfsstat(None, 0, MNT_NOWAIT)
            if count < 0:
                raise self._errno_error("getfsstat")
            room = count + 4
            buffer = ctypes.create_string_buffer(room * STATFS_SIZE)
            filled = self._getfsstat(buffer, room * STATFS_SIZE, MNT_NOWAIT)
            if filled < 0:
                raise self._errno_error("getfsstat")
            if filled < room:
                self.skipped = []
                return parse_statfs(buffer.raw, filled, self.skipped)
        raise PlatformError("EAGAIN", "getfsstat: the mount table kept growing")

    def suspend(self, mount: Mount, timeout: Optional[float] = None) -> Suspension:
        # UFSSUSPEND cannot be bounded from here: vfs_write_suspend waits for the
        # writers in progress (ffs_suspend.c, ffs_susp_suspend); the caller checks
        # its deadline before and after
        try:
            fd = os.open(UFSSUSPEND_PATH, os.O_RDWR)
        except OSError as exc:
            raise PlatformError(errno_name(exc.errno or 0),
                                f"{UFSSUSPEND_PATH}: {exc.strerror}") from None
        try:
            fcntl.ioctl(fd, protocol.UFSSUSPEND, struct.pack("<2i", *mount.fsid))
        except OSError as exc:
            os.close(fd)
            raise PlatformError(errno_name(exc.errno or 0),
                                f"UFSSUSPEND of {mount.mount_on}: {exc.strerror}") from None
        return _DescriptorSuspension(mount, fd)

    def sync(self, timeout: Optional[float] = None) -> None:
        os.sync()

    def zpool_sync(self, pools: Sequence[str], timeout: Optional[float] = None) -> None:
        command = [ZPOOL, "sync", *pools]
        limit = ZPOOL_SECONDS if timeout is None else max(0.0, min(ZPOOL_SECONDS, timeout))
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise PlatformError("ETIMEDOUT", f"{' '.join(command)}: no answer within"
                                f" {limit:g} s") from None
        except OSError as exc:
            raise PlatformError(errno_name(exc.errno or 0),
                                f"{ZPOOL}: {exc.strerror}") from None
        if result.returncode != 0:
            output = result.stdout[:2000].decode(errors="replace").strip()
            raise PlatformError("EIO", f"{' '.join(command)} exited {result.returncode}:"
                                f" {output}")

    def fd_mount(self, fd: int, mounts: Sequence[Mount]) -> Optional[Mount]:
        # fstatfs(2) names the filesystem of an open file by its fsid
        buffer = ctypes.create_string_buffer(STATFS_SIZE)
        try:
            fstatfs = self._libc.fstatfs
        except AttributeError:
            return None
        fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
        if fstatfs(fd, buffer) != 0:
            return None
        found = parse_statfs(buffer.raw, 1, [])
        if not found:
            return None
        return next((m for m in mounts if m.fsid == found[0].fsid), None)

    @staticmethod
    def _errno_error(what: str) -> PlatformError:
        number = ctypes.get_errno()
        return PlatformError(errno_name(number), f"{what}: {os.strerror(number)}")


class _ConnectionSuspension(Suspension):
    def __init__(self, mount: Mount, connection: simwire.LineSocket) -> None:
        super().__init__(mount)
        self._connection: Optional[simwire.LineSocket] = connection

    def resume(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            reply = connection.request({"op": "resume"})
        except (OSError, simwire.WireError) as exc:
            reply = simwire.failure("EIO", str(exc))
        finally:
            connection.close()  # like closing the descriptor: resumes in any case
        if not reply["ok"]:
            raise PlatformError(str(reply.get("errno", "EIO")),
                                f"resume of {self.mount.mount_on}: {reply.get('message')};"
                                " released by closing the connection")


class SimPlatform(Platform):
    """The simulator's filesystem service at ``path`` (see :mod:`hvbsd.vss.simwire`)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        # one kept-open connection for queries; suspensions get their own
        self._control: Optional[simwire.LineSocket] = None
        self.skipped = []

    def _connect(self, timeout: Optional[float] = None) -> simwire.LineSocket:
        limit = self.timeout if timeout is None else max(0.01, min(self.timeout, timeout))
        try:
            return simwire.LineSocket(self.path, limit)
        except OSError as exc:
            raise PlatformError(errno_name(exc.errno or errno.EIO),
                                f"{self.path}: cannot reach the simulator's filesystem"
                                f" service: {exc.strerror}") from None

    def _call(self, request: dict) -> dict:
        for attempt in (1, 2):
            if self._control is None:
                self._control = self._connect()
            try:
                reply = self._control.request(request)
                break
            except (OSError, simwire.WireError) as exc:
                self._control.close()
                self._control = None
                if attempt == 2:
                    raise PlatformError("EIO", f"{self.path}: {request['op']}: {exc}") from None
        if not reply["ok"]:
            raise PlatformError(str(reply.get("errno", "EIO")),
                                f"{request['op']}: {reply.get('message', 'failed')}")
        return reply

    def list_mounts(self) -> List[Mount]:
        reply = self._call({"op": "mounts"})
        entries = reply.get("mounts")
        if not isinstance(entries, list):
            raise PlatformError("EIO", f"{self.path}: mounts reply without a mount list")
        mounts, self.skipped = [], []
        for index, entry in enumerate(entries):
            try:
                mounts.append(simwire.mount_from_wire(entry))
            except simwire.WireError as exc:
                self.skipped.append(f"mount entry {index} skipped: {str(exc)[:200]}")
        return mounts

    def suspend(self, mount: Mount, timeout: Optional[float] = None) -> Suspension:
        connection = self._connect(timeout)
        try:
            reply = connection.request({"op": "suspend", "fsid": list(mount.fsid)})
        except (OSError, simwire.WireError) as exc:
            connection.close()
            raise PlatformError("EIO", f"suspend {mount.mount_on}: {exc}") from None
        if not reply["ok"]:
            connection.close()
            raise PlatformError(str(reply.get("errno", "EIO")),
                                f"suspend {mount.mount_on}: {reply.get('message')}")
        return _ConnectionSuspension(mount, connection)

    def sync(self, timeout: Optional[float] = None) -> None:
        self._bounded({"op": "sync"}, timeout)

    def zpool_sync(self, pools: Sequence[str], timeout: Optional[float] = None) -> None:
        self._bounded({"op": "zpool_sync", "pools": list(pools)}, timeout)

    def _bounded(self, request: dict, timeout: Optional[float]) -> None:
        """One request on its own connection that waits at most ``timeout``."""
        if timeout is None:
            self._call(request)
            return
        if timeout <= 0:
            raise PlatformError("ETIMEDOUT", f"{request['op']}: no time left")
        connection = self._connect(timeout)
        try:
            reply = connection.request(request)
        except (OSError, simwire.WireError) as exc:
            raise PlatformError("ETIMEDOUT" if isinstance(exc, (TimeoutError, socket.timeout))
                                else "EIO",
                                f"{self.path}: {request['op']}: {exc or 'timed out'}") from None
        finally:
            connection.close()
        if not reply["ok"]:
            raise PlatformError(str(reply.get("errno", "EIO")),
                                f"{request['op']}: {reply.get('message', 'failed')}")

    def fd_mount(self, fd: int, mounts: Sequence[Mount]) -> Optional[Mount]:
        # the simulated filesystems are the guest's directories: the deepest mount
        # point above the open file's path holds it
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        holders = [m for m in mounts if path == m.mount_on or path.startswith(
            m.mount_on.rstrip("/") + "/")]
        return max(holders, key=lambda m: len(m.mount_on), default=None)
