"""What the FreeBSD commands share: the kernel handle and err(3)-style messages."""

from __future__ import annotations

import os
import sys

from hvbsd.sim.kernel import Kernel


def kernel() -> Kernel:
    return Kernel.from_environment()


def warnx(program: str, message: str) -> None:
    """warnx(3): ``program: message`` on stderr."""
    sys.stderr.write(f"{program}: {message}\n")


def warn(program: str, message: str, errno_value: int) -> None:
    """warn(3): ``program: message: strerror(errno)`` on stderr."""
    sys.stderr.write(f"{program}: {message}: {os.strerror(errno_value)}\n")


def strerror(errno_value: int) -> str:
    # FreeBSD's wording where it differs from glibc's.
    return _FREEBSD_STRERROR.get(errno_value, os.strerror(errno_value))


_FREEBSD_STRERROR = {
    6: "Device not configured",
    16: "Device busy",
    49: "Can't assign requested address",
    93: "Protocol not supported",
    99: "Can't assign requested address",
}


def exec_titled(title: str, module: str, payload: str) -> None:
    """Replace this process with ``python -m MODULE PAYLOAD`` shown as TITLE.

    FreeBSD programs retitle themselves (setproctitle); rc.subr and pgrep match on
    that title, so the simulation re-executes under it as argv[0]. Python finds its
    installation (and the guest's pyvenv.cfg) from argv[0] unless told otherwise,
    hence PYTHONEXECUTABLE; the retitled program clears it again at start
    (see ``forget_titled_exec``) so programs it starts are not affected.
    """
    environment = dict(os.environ, PYTHONEXECUTABLE=sys.executable)
    os.execve(sys.executable, [title, "-m", module, payload], environment)


def forget_titled_exec() -> None:
    os.environ.pop("PYTHONEXECUTABLE", None)


def set_process_name(name: str) -> None:
    """What pkill -x and ps's comm see (FreeBSD's p_comm); best effort on Linux."""
    try:
        with open("/proc/self/comm", "w", encoding="utf-8") as stream:
            stream.write(name[:15])
    except OSError:
        pass


def syslog_path() -> str:
    """The guest's syslog file (its syslogd writes /var/log/messages)."""
    return os.environ.get("HVBSD_SIM_SYSLOG") or "/var/log/messages"


def syslog_line(tag: str, message: str, hostname: str, pid: int | None = None) -> str:
    """One line as FreeBSD's syslogd writes it: ``Mmm dd hh:mm:ss host tag[pid]: msg``."""
    import time

    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    ident = f"{tag}[{pid}]" if pid is not None else tag
    return f"{stamp} {hostname} {ident}: {message}\n"


def append_syslog(lines: list[str]) -> None:
    import fcntl

    path = syslog_path()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.write(handle, "".join(lines).encode("utf-8", "surrogateescape"))
    finally:
        os.close(handle)


def hostname() -> str:
    try:
        return str(kernel().snapshot().sysctl_value("kern.hostname"))
    except Exception:
        return os.uname().nodename
