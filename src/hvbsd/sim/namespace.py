"""Linux namespace mechanics for simulated guests: the holder process and entering it.

A guest is held by one process, PID 1 of its own PID namespace, inside a user
namespace (the caller's uid is root there), a mount, a UTS and a network
namespace.  It builds the guest's root file system from a spec written by
:mod:`hvbsd.sim.guest`, pivots into it, then only reaps orphans until told to
stop.  Other processes join it with ``nsenter``.

Containment: the guest's root is a tmpfs made read-only once assembled; the
overlays (upper layers in the guest's state directory), its /tmp and /dev are
the only places it can write.  Host directories it needs to run programs are
bound read-only; every other top-level host directory is an empty directory
of that read-only root.  Root inside a user namespace may remount or unmount
what its own namespace mounted, so once everything is in place the holder
moves into a second, nested user and mount namespace: the kernel then locks
every mount it copied (read-only stays read-only, nothing can be unmounted to
show what is beneath).  Processes entering the guest join that nested one.

Run as ``python -m hvbsd.sim.namespace hold SPEC.json``: the launcher prints
``{"pid": ..., "starttime": ...}`` of the holder once the guest's file system
is ready, or one error line on stderr and exits 1.

Python 3.11 has no ``os.unshare``/``os.setns``, so the few system calls come
from libc through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import platform
import re
import shutil
import signal
import stat
import sys
from typing import Any, NoReturn, Optional

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2

# mount_setattr(2) (Linux 5.12) has the same number on every architecture.
_SYS_MOUNT_SETATTR = 442
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
# statvfs f_flag bits and the mount flags a read-only remount must repeat:
# the kernel refuses to clear a flag that a less privileged namespace locked.
_KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

# Top-level host directories the guest's programs need, bound read-only when
# they are directories (on merged-/usr systems most are symlinks into /usr).
# Where the holder pins the outer user namespace (a bind of its nsfs file) in
# the guest's root, for ordinary users entering the guest (see enter_command).
# Joining it needs CAP_SYS_ADMIN over it, which no process inside has.
PARENT_USERNS = "/.hvbsd-outer-userns"
SHARED_TOPS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "sys", "nix", "gnu")

# pivot_root has no libc wrapper; its number depends on the architecture.
_SYS_PIVOT_ROOT = {
    "x86_64": 155,
    "aarch64": 41,
    "riscv64": 41,
    "loongarch64": 41,
    "i386": 217,
    "i686": 217,
    "armv7l": 218,
    "ppc64le": 203,
    "s390x": 217,
}

# Device nodes of the host that the guest's private /dev gets bound in.
DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEVICE_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}

UNAVAILABLE_HINT = (
    "simulated guests need Linux user, mount and PID namespaces and nsenter(1); "
    "use the vagrant provider instead (hvbsd lab up --provider vagrant)"
)
# Setting this makes the probe fail, as it would on a kernel without namespaces.
FORCE_UNAVAILABLE_ENV = "HVBSD_SIM_NO_NAMESPACES"


class NamespaceError(OSError):
    """A namespace or mount operation failed; the message says which."""


_libc: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        errno_value = ctypes.get_errno()
        raise NamespaceError(errno_value, f"{what}: {os.strerror(errno_value)}")


def unshare(flags: int) -> None:
    _check(_lib().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str, target: str, fstype: Optional[str], flags: int, data: str = "") -> None:
    result = _lib().mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(result, f"mount {fstype or 'bind'} {source} on {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _mounts_at_or_below(target: str) -> list[str]:
    """Mount points of this namespace at ``target`` or below it, parents first."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as stream:
        for line in stream:
            # Field 5 is the mount point, with space, tab, newline and '\\' octal-escaped.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == target or point.startswith(target.rstrip("/") + "/"):
                found.append(point)
    return found


def make_read_only(target: str, recursive: bool = True) -> None:
    """Make the mount at ``target`` (and every mount below it) read-only.

    mount_setattr(2) does it in one call; older kernels get a read-only bind
    remount per mount, repeating the flags each already has.
    """
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _lib().syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        target.encode(),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result == 0:
        return
    if ctypes.get_errno() not in (errno.ENOSYS, errno.EINVAL):
        _check(result, f"mount_setattr read-only {target}")
    for point in _mounts_at_or_below(target) if recursive else [target]:
        kept = os.statvfs(point).f_flag
        extra = sum(ms for st, ms in _KEPT_FLAGS if kept & st)
        mount("none", point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | extra)


def umount(target: str, flags: int = 0) -> None:
    _check(_lib().umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise NamespaceError(0, f"pivot_root: unknown system call number on {platform.machine()}")
    result = _lib().syscall(ctypes.c_long(number), new_root.encode(), put_old.encode())
    _check(result, f"pivot_root {new_root}")


def sethostname(name: str) -> None:
    encoded = name.encode()
    _check(_lib().sethostname(encoded, ctypes.c_size_t(len(encoded))), "sethostname")


# -- probing ---------------------------------------------------------------------------


def nsenter_path() -> Optional[str]:
    return shutil.which("nsenter") or next(
        (p for p in ("/usr/bin/nsenter", "/bin/nsenter") if os.access(p, os.X_OK)), None
    )


def probe() -> Optional[str]:
    """Why simulated guests cannot run here, or None when they can.

    Forks a child that tries to create the namespaces a guest needs, so the
    answer reflects this kernel, its sysctls and any seccomp filter.
    """
    if os.environ.get(FORCE_UNAVAILABLE_ENV):
        return f"namespaces disabled by {FORCE_UNAVAILABLE_ENV}"
    if sys.platform != "linux":
        return f"this system is {platform.system()}, not Linux"
    if nsenter_path() is None:
        return "nsenter (util-linux) is not installed"
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(read_end)
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWNET)
        except OSError as error:
            os.write(write_end, (error.strerror or str(error)).encode()[:500])
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        message = reader.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return (f"cannot create user namespaces ({message or 'unknown error'}); "
                + userns_advice())
    return None


def _sysctl(name: str, proc_sys: str) -> Optional[str]:
    try:
        with open(os.path.join(proc_sys, *name.split(".")), encoding="ascii") as stream:
            return stream.read(64).strip()
    except (OSError, UnicodeDecodeError):
        return None


def userns_advice(proc_sys: str = "/proc/sys") -> str:
    """What may forbid unprivileged user namespaces here, and how to allow them.

    Ubuntu 23.10 and later (24.04 by default) let AppArmor restrict them
    (``kernel.apparmor_restrict_unprivileged_userns=1``); Debian's older kernels
    have ``kernel.unprivileged_userns_clone``; every kernel caps them with
    ``user.max_user_namespaces``.
    """
    apparmor = "kernel.apparmor_restrict_unprivileged_userns"
    if _sysctl(apparmor, proc_sys) == "1":
        return (f"AppArmor restricts unprivileged user namespaces here ({apparmor}=1, "
                f"Ubuntu 24.04's default): allow them with 'sudo sysctl -w {apparmor}=0' "
                f"(to keep it, put '{apparmor}=0' in /etc/sysctl.d/60-hvbsd.conf), or load "
                f"an AppArmor profile that grants 'userns,' to {sys.executable}")
    found = []
    clone = _sysctl("kernel.unprivileged_userns_clone", proc_sys)
    if clone == "0":
        found.append("kernel.unprivileged_userns_clone=0 (allow: 'sudo sysctl -w "
                     "kernel.unprivileged_userns_clone=1')")
    limit = _sysctl("user.max_user_namespaces", proc_sys)
    if limit == "0":
        found.append("user.max_user_namespaces=0 (allow: 'sudo sysctl -w "
                     "user.max_user_namespaces=10000')")
    if found:
        return "unprivileged user namespaces are off: " + "; ".join(found)
    return ("check that unprivileged user namespaces are allowed: on Ubuntu 24.04 AppArmor "
            f"restricts them ({apparmor}=1; allow with 'sudo sysctl -w {apparmor}=0' or an "
            "AppArmor profile granting 'userns,'), elsewhere see kernel.unprivileged_userns_clone"
            ", user.max_user_namespaces and any container seccomp filter")


# -- process identity --------------------------------------------------------------------


def process_starttime(pid: int) -> Optional[int]:
    """Start time (clock ticks after boot) of a live, non-zombie process, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            text = stream.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields follow the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def pid_namespace_of(pid: int) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in_namespace(namespace: str) -> list[int]:
    """Host PIDs of live processes whose PID namespace is ``namespace``."""
    found = []
    for entry in os.listdir("/proc"):
        if (
            entry.isdigit()
            and pid_namespace_of(int(entry)) == namespace
            and process_starttime(int(entry)) is not None
        ):
            found.append(int(entry))
    return found


def enter_command(pid: int) -> list[str]:
    """The argv prefix that runs a command inside the guest held by ``pid``.

    ``--preserve-credentials`` keeps the caller's uid, which the guest maps to 0;
    nsenter's own setgroups() would fail where setgroups is denied.

    The guest's UTS, network and PID namespaces belong to the outer user
    namespace, its mount namespace to the nested one the holder moved into.
    setns(2) into a UTS, network or PID namespace needs CAP_SYS_ADMIN in the
    caller's own user namespace as well (Linux kernel/utsname.c,
    utsns_install): root has it already, so one nsenter enters them all and
    then, in its second pass, the nested user namespace (util-linux
    sys-utils/nsenter.c enters the user namespace last when it can).  An ordinary user
    first enters the outer user namespace (pinned at ``PARENT_USERNS`` in the
    guest's root) with those three, then a second nsenter enters the mount
    and nested user namespace.
    """
    nsenter = nsenter_path()
    if nsenter is None:
        raise NamespaceError(0, UNAVAILABLE_HINT)
    if os.geteuid() == 0:
        return [
            nsenter, f"--target={pid}", "--user", "--mount", "--uts", "--net", "--pid",
            "--root", "--wd", "--preserve-credentials", "--",
        ]
    return [
        nsenter,
        f"--user=/proc/{pid}/root{PARENT_USERNS}",
        f"--uts=/proc/{pid}/ns/uts",
        f"--net=/proc/{pid}/ns/net",
        f"--pid=/proc/{pid}/ns/pid",
        "--preserve-credentials",
        "--",
        nsenter, f"--target={pid}", "--mount", "--user", "--root", "--wd",
        "--preserve-credentials", "--",
    ]


# -- the launcher and the holder ------------------------------------------------------------


def _id_map(kind: str) -> str:
    """The map for the guest's user namespace.

    Root keeps every id it has (an identity map of its own extents), so files
    of other users keep their owners; anyone else maps only itself, to 0.
    """
    if os.geteuid() == 0:
        lines = []
        with open(f"/proc/self/{kind}_map", encoding="ascii") as stream:
            for line in stream:
                inside, _outside, count = line.split()
                lines.append(f"{inside} {inside} {count}")
        return "\n".join(lines) + "\n"
    own = os.geteuid() if kind == "uid" else os.getegid()
    return f"0 {own} 1\n"


def _write_id_maps(pid: int) -> None:
    if os.geteuid() != 0:
        with open(f"/proc/{pid}/setgroups", "w", encoding="ascii") as stream:
            stream.write("deny")
    for kind in ("uid", "gid"):
        with open(f"/proc/{pid}/{kind}_map", "w", encoding="ascii") as stream:
            stream.write(_id_map(kind))


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def launch(spec: dict[str, Any]) -> int:
    """Start the holder described by ``spec``; print its pid as JSON."""
    ack_read, ack_write = os.pipe()
    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the namespace creator, covered by integration tests
        os.close(ack_read)
        os.close(go_write)
        os.close(ready_read)
        _create_namespaces(spec, ack_write, go_read, ready_write)
    os.close(ack_write)
    os.close(go_read)
    os.close(ready_write)
    try:
        if os.read(ack_read, 1) != b"u":
            raise NamespaceError(0, _read_line(ready_read) or "user namespace not created")
        _write_id_maps(child)
        os.write(go_write, b"g")
        holder_line = _read_line(ack_read)
        os.waitpid(child, 0)
        ready = _read_line(ready_read)
        if not holder_line.isdigit() or ready != "ok":
            raise NamespaceError(0, ready or "the guest's holder process exited during setup")
        holder = int(holder_line)
        starttime = process_starttime(holder)
        if starttime is None:
            raise NamespaceError(0, "the guest's holder process exited right after setup")
    except OSError as error:
        sys.stderr.write(f"{error.strerror or error}\n")
        return 1
    sys.stdout.write(json.dumps({"pid": holder, "starttime": starttime}) + "\n")
    return 0


def _create_namespaces(  # pragma: no cover - forked child
    spec: dict[str, Any], ack_write: int, go_read: int, ready_write: int
) -> NoReturn:
    try:
        unshare(CLONE_NEWUSER)
        os.write(ack_write, b"u")
        if os.read(go_read, 1) != b"g":
            os._exit(1)
        unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWNET)
        holder = os.fork()
        if holder == 0:
            os.close(ack_write)
            _hold(spec, ready_write)
        os.write(ack_write, f"{holder}\n".encode())
        os._exit(0)
    except BaseException as error:
        message = getattr(error, "strerror", None) or str(error)
        os.write(ready_write, f"{message}\n".encode())
        os._exit(1)


def _mountpoint(rootfs: str, guest_path: str, directory: bool = True) -> str:
    """Create ``guest_path`` below ``rootfs`` for a mount, following no symlink.

    Parts of the path may lie in layers the guest wrote on its last run (its
    /tmp, the overlays' upper layers); a symlink there must not steer a mount
    or a mkdir to the host's files, so any part that is not what a mount point
    needs is refused.
    """
    parts = [part for part in guest_path.split("/") if part]
    current = rootfs
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        last = index == len(parts) - 1
        want_directory = directory or not last
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if want_directory:
                os.mkdir(current, 0o755)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(current, flags, 0o644))
            continue
        if want_directory and not stat.S_ISDIR(info.st_mode):
            shown = "/" + "/".join(parts[: index + 1])
            raise NamespaceError(0, f"{shown} is not a directory inside the guest")
        if not want_directory and not stat.S_ISREG(info.st_mode):
            raise NamespaceError(0, f"{guest_path} is not a regular file inside the guest")
    return current


def _bind_read_only(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    make_read_only(target)


def _build_root(spec: dict[str, Any]) -> None:
    """Assemble the guest's root under spec['rootfs'] and pivot into it."""
    rootfs = spec["rootfs"]
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", rootfs, "tmpfs", MS_NOSUID, "mode=0755")
    overlays: dict[str, dict[str, str]] = spec["overlays"]
    for name in sorted(os.listdir("/")):
        host = "/" + name
        target = os.path.join(rootfs, name)
        if name in overlays or name in ("proc", "dev", "tmp", "run"):
            continue
        if os.path.islink(host):
            os.symlink(os.readlink(host), target)
        elif os.path.isdir(host):
            # Every other host directory (/home, /mnt, /opt, /srv, ...) stays an
            # empty directory of the read-only root: nothing of it is shown.
            os.mkdir(target)
            if name in SHARED_TOPS:
                _bind_read_only(host, target)
    for name, layers in overlays.items():
        target = os.path.join(rootfs, name)
        os.mkdir(target)
        options = f"lowerdir={layers['lower']},upperdir={layers['upper']},workdir={layers['work']}"
        try:
            mount("overlay", target, "overlay", 0, options + ",userxattr")
        except NamespaceError:
            mount("overlay", target, "overlay", 0, options)  # kernels before 5.11
    os.symlink("var/run", os.path.join(rootfs, "run"))
    for name in ("tmp", "dev", "proc"):
        os.mkdir(os.path.join(rootfs, name))
    mount(spec["tmp"], os.path.join(rootfs, "tmp"), None, MS_BIND)
    dev = os.path.join(rootfs, "dev")
    mount(spec["dev"], dev, None, MS_BIND)
    for node in DEVICE_NODES:
        if os.path.exists("/dev/" + node):
            mount("/dev/" + node, _mountpoint(rootfs, "/dev/" + node, directory=False), None,
                  MS_BIND)
    mount(spec["kernel"], _mountpoint(rootfs, spec["kernel_mountpoint"]), None, MS_BIND)
    for host_path in spec.get("read_only_binds", []):
        # What the guest's Python needs from the host (its prefix, site
        # directories, the hvbsd sources), read-only at the same path.
        if os.path.exists(host_path):
            target = _mountpoint(rootfs, host_path, directory=os.path.isdir(host_path))
            _bind_read_only(host_path, target)
    # A read-only proc: as root (ids mapped one to one), the guest's root is
    # the host's uid 0 for /proc/sys and /proc/sysrq-trigger.
    mount("proc", os.path.join(rootfs, "proc"), "proc",
          MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    _mountpoint(rootfs, PARENT_USERNS, directory=False)
    make_read_only(rootfs, recursive=False)
    os.chdir(rootfs)
    pivot_root(".", ".")
    umount(".", MNT_DETACH)
    os.chdir("/")
    mount("/proc/self/ns/user", PARENT_USERNS, None, MS_BIND)


def _nested_map(kind: str) -> str:
    """The map of the nested user namespace: every id of this one, to itself."""
    lines = []
    with open(f"/proc/self/{kind}_map", encoding="ascii") as stream:
        for line in stream:
            inside, _outside, count = line.split()
            lines.append(f"{inside} {inside} {count}")
    return "\n".join(lines) + "\n"


class _MountLocker:
    """Moves the holder into a nested user + mount namespace, locking every mount.

    The kernel locks the mounts of a mount namespace copied into a less
    privileged user namespace (fs/namespace.c, copy_mnt_ns and lock_mnt_tree):
    read-only, nosuid, nodev and noexec can no longer be cleared and no mount
    can be taken off.  A nested user namespace's ids can only be mapped by a
    process of its parent, so a helper forked now (and kept off the holder's
    pivot_root by a mount namespace of its own, with the host's /proc) maps
    them once the holder has moved.
    """

    def __init__(self) -> None:
        maps = {kind: _nested_map(kind) for kind in ("uid", "gid")}
        ready_read, ready_write = os.pipe()
        self._go_read, self._go_write = os.pipe()
        self._helper = os.fork()
        if self._helper == 0:
            status = 1
            try:
                os.close(ready_read)
                os.close(self._go_write)
                unshare(CLONE_NEWNS)
                os.write(ready_write, b"r")
                if os.read(self._go_read, 1) == b"g":
                    with open("/proc/self/stat", encoding="ascii", errors="replace") as stream:
                        text = stream.read()
                    holder = int(text[text.rfind(")") + 2 :].split()[1])  # ppid, host pid
                    for kind in ("uid", "gid"):
                        with open(f"/proc/{holder}/{kind}_map", "w", encoding="ascii") as stream:
                            stream.write(maps[kind])
                    status = 0
            finally:
                os._exit(status)
        os.close(ready_write)
        os.close(self._go_read)
        got = os.read(ready_read, 1)
        os.close(ready_read)
        if got != b"r":
            os.waitpid(self._helper, 0)
            raise NamespaceError(0, "cannot prepare the guest's nested user namespace")

    def lock(self) -> None:
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNS)
            os.write(self._go_write, b"g")
        finally:
            os.close(self._go_write)
            _, status = os.waitpid(self._helper, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise NamespaceError(0, "cannot map the guest's ids in its nested user namespace")


def _hold(spec: dict[str, Any], ready_write: int) -> NoReturn:  # pragma: no cover - PID 1
    try:
        locker = _MountLocker()
        _build_root(spec)
        sethostname(spec["hostname"])
        locker.lock()
    except BaseException as error:
        message = getattr(error, "strerror", None) or str(error)
        os.write(ready_write, f"cannot set up the guest: {message}\n".encode())
        os._exit(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.write(ready_write, b"ok\n")
    os.closerange(3, 1024)
    _reap_forever()


def _reap_forever() -> NoReturn:  # pragma: no cover - PID 1
    """PID 1's duty: reap every orphan; exit on SIGTERM (the kernel kills the rest)."""
    watched = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        received = signal.sigwait(watched)
        if received == signal.SIGTERM:
            os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "hold":
        sys.stderr.write("usage: python -m hvbsd.sim.namespace hold SPEC.json\n")
        return 64
    with open(argv[1], encoding="utf-8") as stream:
        spec = json.load(stream)
    return launch(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
