"""Application quiesce hooks: executables run with ``freeze`` / ``thaw``.

Every executable regular file in the hook directory is a hook (names starting
with ``.`` or ending in ``~`` are skipped). Freeze runs them in lexical order,
thaw in the reverse order. Each run is a child process with a timeout; on
timeout its whole process tree is killed (see :mod:`hvbsd.vss.procs`), also
what left its session. Its verdict is its exit status; its output is
capped and cleaned before it is logged. Hooks run as root, so the
directory and every hook must belong to root and must not be writable by
group or others; otherwise no hook runs at all.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from hvbsd.vss.log import clean
from hvbsd.vss.procs import Reaper

HOOK_PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
#: output kept per hook run; the rest is read and thrown away
OUTPUT_KEEP = 64 * 1024
#: how long to keep reading after the hook exited, while a descendant holds the pipe
DRAIN_SECONDS = 0.1
#: how often to look whether the hook exited while its pipe stays quiet
POLL_SECONDS = 0.05
KILL_WAIT_SECONDS = 2.0


class HookDirError(Exception):
    """The hook directory or a hook in it is unsafe; no hook may run."""


@dataclass(frozen=True)
class HookResult:
    name: str
    action: str
    returncode: Optional[int]
    timed_out: bool
    seconds: float
    output: str
    #: bytes of output beyond OUTPUT_KEEP, read and thrown away
    discarded: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"hook {self.name} {self.action}: killed after its {self.seconds:.1f} s timeout"
        if self.returncode is None:
            return f"hook {self.name} {self.action}: could not run: {self.output}"
        if self.returncode < 0:
            return f"hook {self.name} {self.action}: killed by signal {-self.returncode}"
        return f"hook {self.name} {self.action}: exit status {self.returncode}"


def _unsafe(path: str, st: os.stat_result, owner_uid: int) -> Optional[str]:
    if st.st_uid != owner_uid:
        return f"{path} is owned by uid {st.st_uid}, not {owner_uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


class Hooks:
    """The hooks of one directory."""

    def __init__(self, directory: str, timeout: float, owner_uid: int = 0,
                 reaper: Optional[Reaper] = None) -> None:
        self.directory = directory
        self.timeout = timeout
        self.owner_uid = owner_uid
        self.reaper = reaper if reaper is not None else Reaper(acquire=False)

    def discover(self) -> List[str]:
        """Hook names in lexical order; HookDirError if anything is unsafe.

        A missing directory means no hooks.
        """
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HookDirError(f"hook directory {self.directory}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise HookDirError(f"hook directory {self.directory} is not a directory")
        problem = _unsafe(self.directory, st, self.owner_uid)
        if problem:
            raise HookDirError(f"hooks refused: {problem}")
        names = []
        for name in sorted(os.listdir(self.directory)):
            if name.startswith(".") or name.endswith("~"):
                continue
            path = os.path.join(self.directory, name)
            entry = os.lstat(path)
            if not stat.S_ISREG(entry.st_mode) or not entry.st_mode & stat.S_IXUSR:
                continue
            problem = _unsafe(path, entry, self.owner_uid)
            if problem:
                raise HookDirError(f"hooks refused: {problem}")
            names.append(name)
        return names

    def run(self, name: str, action: str, timeout: Optional[float] = None,
            on_start: Optional[Callable[[int], None]] = None) -> HookResult:
        """Run one hook with ``action`` as its argument.

        It gets ``timeout`` seconds (at most the hook timeout); then its whole
        process tree is killed. The verdict is the hook's own exit status: a
        descendant that keeps the output pipe open does not hold up the
        result. At most OUTPUT_KEEP bytes of output are kept, the rest is read
        and discarded. ``on_start(pid)`` is called once the process exists.
        """
        limit = self.timeout if timeout is None else max(0.0, min(self.timeout, timeout))
        path = os.path.join(self.directory, name)
        started = time.monotonic()
        env = {"PATH": HOOK_PATH, "HVBSD_VSS_ACTION": action}
        self.reaper.mark()
        try:
            child = subprocess.Popen(
                [path, action], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd="/", env=env, start_new_session=True)
        except OSError as exc:
            return HookResult(name, action, None, False, 0.0, exc.strerror or str(exc))
        if on_start is not None:
            on_start(child.pid)
        assert child.stdout is not None
        output = _Output()
        timed_out = False
        try:
            timed_out = not _follow(child, output, started + limit)
            if timed_out:
                self.reaper.kill_tree(child.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(KILL_WAIT_SECONDS)
        finally:
            child.stdout.close()
        if child.returncode is not None:
            self.reaper.reap()  # orphans we adopted that have exited
        return HookResult(name, action, child.returncode, timed_out,
                          time.monotonic() - started, output.text(), output.discarded)


class _Output:
    """The first OUTPUT_KEEP bytes of a hook's output, and how much more there was."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.discarded = 0

    def add(self, chunk: bytes) -> None:
        room = OUTPUT_KEEP - len(self.kept)
        self.kept += chunk[:room]
        self.discarded += max(0, len(chunk) - room)

    def text(self) -> str:
        return clean(self.kept.decode("utf-8", errors="replace").strip(), OUTPUT_KEEP)


def _follow(child: subprocess.Popen, output: _Output, deadline: float) -> bool:
    """Read the output until the hook has exited; False if ``deadline`` came first."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    open_pipe = True
    exited_at: Optional[float] = None
    while True:
        now = time.monotonic()
        if exited_at is None and child.poll() is not None:
            exited_at = now
        if exited_at is not None and (not open_pipe or now >= exited_at + DRAIN_SECONDS):
            return True  # exited; whatever still holds the pipe is not the hook
        if exited_at is None and now >= deadline:
            return False
        until = exited_at + DRAIN_SECONDS if exited_at is not None else deadline
        # wake now and then to notice an exit while a descendant keeps the pipe open
        wait = max(0.0, min(until - now, POLL_SECONDS))
        if not open_pipe:
            # the pipe is closed: only the exit is left to wait for
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, until - now))
            continue
        if poller.poll(int(wait * 1000) + 1):
            open_pipe = _drain(fd, output)
            if not open_pipe:
                poller.unregister(fd)


def _drain(fd: int, output: _Output) -> bool:
    """Read what is there; False at end of file."""
    for _ in range(64):  # at most 4 MiB per wakeup, then look at the clock again
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        output.add(chunk)
    return True
