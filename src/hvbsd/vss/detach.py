"""Detaching a daemon the way daemon(3) does, telling the launcher how the start went,
and (for ``--status``) whether the daemon a status file names still runs.

Shared by hvbsd_vssd and hvbsd_kvpd.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from hvbsd.vss.log import Log, StderrSink

EX_OK = 0


def daemonize(prog: str) -> int:
    """Detach like daemon(3): double fork, setsid, chdir /, stdio on /dev/null.

    Returns a descriptor for ``report_ready``: the original process waits on
    it and exits with the status reported there (0 when it closes without a
    word), so the launcher's exit status says whether the daemon came up.
    """
    ready_read, ready_write = os.pipe()
    if os.fork() > 0:
        os.close(ready_write)
        report = b""
        while len(report) < 4096:
            chunk = os.read(ready_read, 4096)
            if not chunk:
                break
            report += chunk
        status, _, message = report.decode(errors="replace").partition(" ")
        if message:
            sys.stderr.write(f"{prog}: {message}\n")
        os._exit(int(status) if status.isdigit() else 0)
    os.close(ready_read)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    return ready_write


def report_ready(ready: int, status: int = EX_OK, message: str = "") -> None:
    """Tell the waiting launcher how the start went, and let it go."""
    if ready < 0:
        return
    if status != EX_OK:
        with contextlib.suppress(OSError):
            os.write(ready, f"{status} {message}".encode()[:4000])
    os.close(ready)


def fail_start(log: Log, prog: str, message: str, status: int, ready: int = -1) -> int:
    """A start that failed: logged, then told to the waiting launcher (``ready``)
    or, in the foreground with the log going elsewhere, written on stderr.
    Returns ``status``."""
    log.error(message)
    if ready >= 0:
        report_ready(ready, status, message)
    elif not isinstance(log.sink, StderrSink):
        sys.stderr.write(f"{prog}: {message}\n")
    return status


def pid_alive(pid: Any) -> bool:
    """A process ``pid`` exists (kill(2) with signal 0; EPERM counts as alive).

    Anything but a pid_t above 0 (a status file's value is untrusted) is not alive.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 1 << 31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
