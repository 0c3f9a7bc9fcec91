"""Hook processes and everything they start: find it all, kill it all.

A hook runs in its own session (so its process group), but what it starts may
leave both with setsid(2), or double-fork so that its parent is gone. To
still find those, the daemon makes itself the *reaper* of its descendants:
orphans are reparented to it instead of to init.

- FreeBSD: ``procctl(P_PID, getpid(), PROC_REAP_ACQUIRE)``, and at a hook's
  timeout ``PROC_REAP_KILL`` with ``REAPER_KILL_SUBTREE`` and the hook's pid,
  which signals every process descending from that child of the reaper,
  whatever its session ("only to descendants that were forked by the
  direct child with pid specified in the rk_subtree field", procctl(2);
  sys/sys/procctl.h for the numbers and the struct; sys/kern/kern_procctl.c,
  reap_kill).
- Linux (the simulator): ``prctl(PR_SET_CHILD_SUBREAPER)``, and at a timeout
  the descendants of the hook found through ``/proc/*/stat``, plus the
  orphans adopted since the hook started.

Orphans adopted this way become the daemon's children, so ``reap`` collects
them (only called while no other child is being waited for).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from typing import Dict, List, Optional, Set, Tuple

# sys/sys/procctl.h
PROC_REAP_ACQUIRE = 2
PROC_REAP_KILL = 6
REAPER_KILL_SUBTREE = 0x2
P_PID = 0  # sys/sys/wait.h: idtype_t P_PID
# linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36

PROC = "/proc"


class _ReaperKill(ctypes.Structure):
    # struct procctl_reaper_kill
    _fields_ = [("rk_sig", ctypes.c_int), ("rk_flags", ctypes.c_uint),
                ("rk_subtree", ctypes.c_int), ("rk_killed", ctypes.c_uint),
                ("rk_fpid", ctypes.c_int), ("rk_pad0", ctypes.c_uint * 15)]


def _libc() -> Optional[ctypes.CDLL]:
    name = "libc.so.7" if sys.platform.startswith("freebsd") else ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


class Reaper:
    """The daemon as the reaper of its descendants (best effort: never raises)."""

    def __init__(self, acquire: bool = True) -> None:
        """``acquire=False``: no reaper (a library caller); only the live tree is killed."""
        self._libc = _libc()
        self.freebsd = sys.platform.startswith("freebsd")
        self.active = False
        self._since: Optional[int] = None
        if self._libc is None or not acquire:
            return
        try:
            if self.freebsd:
                procctl = self._libc.procctl
                procctl.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p]
                self.active = procctl(P_PID, os.getpid(), PROC_REAP_ACQUIRE, None) == 0
            elif sys.platform.startswith("linux"):
                prctl = self._libc.prctl
                prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                  ctypes.c_ulong, ctypes.c_ulong]
                self.active = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except AttributeError:
            self.active = False

    def mark(self) -> None:
        """A hook starts now: orphans we adopt that started later are its own
        (hooks run one at a time). Costs nothing; the table is read at a kill."""
        self._since = _boot_ticks()

    def kill_tree(self, pid: int) -> None:
        """SIGKILL ``pid``'s process group and every process descending from it."""
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        if self.freebsd and self.active and self._libc is not None:
            request = _ReaperKill(rk_sig=signal.SIGKILL, rk_flags=REAPER_KILL_SUBTREE,
                                  rk_subtree=pid)
            with contextlib.suppress(Exception):
                self._libc.procctl(P_PID, os.getpid(), PROC_REAP_KILL, ctypes.byref(request))
            return
        # several rounds: a process may fork while we look
        for _ in range(4):
            table = _process_table()
            roots = {pid}
            if self.active and self._since is not None:
                roots |= {p for p, (parent, started) in table.items()
                          if parent == os.getpid() and started >= self._since}
            victims = _descendants({p: parent for p, (parent, _) in table.items()}, roots)
            if not victims:
                return
            for victim in victims:
                with contextlib.suppress(OSError):
                    os.kill(victim, signal.SIGKILL)

    def reap(self) -> List[int]:
        """Collect exited orphans; call only while no other child is waited for."""
        reaped: List[int] = []
        if not self.active:
            return reaped
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reaped
            except OSError:
                return reaped
            if pid == 0:
                return reaped
            reaped.append(pid)


def _boot_ticks() -> Optional[int]:
    """Now, in the clock ticks since boot that /proc/PID/stat's starttime counts."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is None:
        return None
    return int(time.clock_gettime(clock) * os.sysconf("SC_CLK_TCK"))


def _process_table() -> Dict[int, Tuple[int, int]]:
    """pid -> (parent pid, start time in ticks since boot), from /proc (Linux)."""
    table = {}
    try:
        entries = os.listdir(PROC)
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{PROC}/{entry}/stat", "rb") as stream:
                text = stream.read(4096)
            fields = text.rsplit(b")", 1)[1].split()
            # after the command: state, ppid, ... starttime is the 20th
            table[int(entry)] = (int(fields[1]), int(fields[19]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def _descendants(table: Dict[int, int], roots: Set[int]) -> Set[int]:
    children: Dict[int, List[int]] = {}
    for process, parent in table.items():
        children.setdefault(parent, []).append(process)
    found: Set[int] = set()
    todo = [r for r in roots if r in table]
    while todo:
        process = todo.pop()
        if process in found or process == os.getpid():
            continue
        found.add(process)
        todo.extend(children.get(process, []))
    return found


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def kill_group(pgid: int) -> bool:
    """SIGKILL the process group ``pgid``; True if it existed."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        return False
    return True
