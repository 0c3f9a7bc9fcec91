"""Application quiesce hooks: executables run with ``freeze`` / ``thaw``.

Every executable regular file in the hook directory is a hook (names starting
with ``.`` or ending in ``~`` are skipped). Freeze runs them in lexical order,
thaw in the reverse order. Each run is a child process with a timeout; on
timeout its whole process group is killed. Hooks run as root, so the
directory and every hook must belong to root and must not be writable by
group or others; otherwise no hook runs at all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import List, Optional

HOOK_PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
OUTPUT_LIMIT = 4096


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

    def __init__(self, directory: str, timeout: float, owner_uid: int = 0) -> None:
        self.directory = directory
        self.timeout = timeout
        self.owner_uid = owner_uid

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

    def run(self, name: str, action: str) -> HookResult:
        """Run one hook with ``action`` as its argument, within the timeout."""
        path = os.path.join(self.directory, name)
        started = time.monotonic()
        env = {"PATH": HOOK_PATH, "HVBSD_VSS_ACTION": action}
        try:
            child = subprocess.Popen(
                [path, action], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd="/", env=env, start_new_session=True)
        except OSError as exc:
            return HookResult(name, action, None, False, 0.0, exc.strerror or str(exc))
        timed_out = False
        try:
            output, _ = child.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(child.pid)
            try:
                output, _ = child.communicate(timeout=1.0)
            except subprocess.TimeoutExpired:
                # a descendant in another session still holds the pipe: stop reading
                if child.stdout is not None:
                    child.stdout.close()
                child.wait()
                output = b""
        return HookResult(name, action, child.returncode, timed_out,
                          time.monotonic() - started,
                          output[:OUTPUT_LIMIT].decode(errors="replace").rstrip())


def _kill_group(pid: int) -> None:
    # the hook leads its own session: take its children with it
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
