"""Linux namespace mechanics for simulated guests: the holder process and entering it.

A guest is held by one process, PID 1 of its own PID namespace, inside a user
namespace (the caller's uid is root there), a mount namespace and a UTS
namespace.  It builds the guest's root file system from a spec written by
:mod:`hvbsd.sim.guest`, pivots into it, then only reaps orphans until told to
stop.  Other processes join it with ``nsenter``.

Run as ``python -m hvbsd.sim.namespace hold SPEC.json``: the launcher prints
``{"pid": ..., "starttime": ...}`` of the holder once the guest's file system
is ready, or one error line on stderr and exits 1.

Python 3.11 has no ``os.unshare``/``os.setns``, so the few system calls come
from libc through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import signal
import sys
from typing import Any, NoReturn, Optional

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

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
            unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS)
        except OSError as error:
            os.write(write_end, (error.strerror or str(error)).encode()[:500])
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        message = reader.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return f"cannot create user namespaces ({message or 'unknown error'})"
    return None


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
    """
    nsenter = nsenter_path()
    if nsenter is None:
        raise NamespaceError(0, UNAVAILABLE_HINT)
    return [
        nsenter,
        f"--target={pid}",
        "--user",
        "--mount",
        "--uts",
        "--pid",
        "--root",
        "--wd",
        "--preserve-credentials",
        "--",
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
        unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS)
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
            os.mkdir(target)
            mount(host, target, None, MS_BIND | MS_REC)
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
            mount("/dev/" + node, os.path.join(dev, node), None, MS_BIND)
    mount(spec["kernel"], rootfs + spec["kernel_mountpoint"], None, MS_BIND)
    for host_path in spec.get("extra_binds", []):
        # Host paths the guest's Python needs that a private tree would hide.
        target = rootfs + host_path
        os.makedirs(target, exist_ok=True)
        mount(host_path, target, None, MS_BIND | MS_REC)
    mount("proc", os.path.join(rootfs, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(rootfs)
    pivot_root(".", ".")
    umount(".", MNT_DETACH)
    os.chdir("/")


def _hold(spec: dict[str, Any], ready_write: int) -> NoReturn:  # pragma: no cover - PID 1
    try:
        _build_root(spec)
        sethostname(spec["hostname"])
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
