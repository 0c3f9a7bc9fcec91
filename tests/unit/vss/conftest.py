"""Fakes at the daemon's process boundaries: the VSS kernel side and the filesystem service.

``FakeKernel`` listens where the device would be and behaves like the driver
as seen through the socket channel: the first opener is registered, later
openers get "busy"; requests go out one at a time and the answer is read back.
``SimFsServer`` (the project's reference server) runs in a thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from hvbsd.vss.mounts import Mount
from hvbsd.vss.simwire import DeviceKernelSide, SimFsServer

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"

ROOT_UFS = Mount((0x11, 0x22), "ufs", "/", "/dev/da0p2")
VAR_UFS = Mount((0x33, 0x44), "ufs", "/var", "/dev/da0p3")
LOCAL_UFS = Mount((0x55, 0x66), "ufs", "/usr/local", "/dev/da1p1")
DEVFS = Mount((0x71, 0x71), "devfs", "/dev", "devfs")
TMPFS = Mount((0x72, 0x72), "tmpfs", "/tmp", "tmpfs")
PROCFS = Mount((0x73, 0x73), "procfs", "/proc", "procfs")
ZROOT = Mount((0x81, 0x82), "zfs", "/", "zroot/ROOT/default")
ZLOG = Mount((0x83, 0x84), "zfs", "/var/log", "zroot/var/log")
TANK = Mount((0x85, 0x86), "zfs", "/data", "tank/data")
NFS = Mount((0x91, 0x92), "nfs", "/mnt/nfs", "server:/export")
RO_UFS = Mount((0xa1, 0xa2), "ufs", "/", "/dev/da0p2", read_only=True)

TABLES = {
    "ufs_only": [ROOT_UFS, DEVFS, VAR_UFS, TMPFS],
    "zfs_only": [ZROOT, DEVFS, ZLOG, TANK],
    "mixed": [ROOT_UFS, DEVFS, TANK, NFS],
    "read_only": [RO_UFS, DEVFS],
    "nothing": [DEVFS, PROCFS, TMPFS],
    "two_ufs": [ROOT_UFS, VAR_UFS],
    "three_ufs": [ROOT_UFS, VAR_UFS, LOCAL_UFS],
}


class FakeKernel(DeviceKernelSide):
    """The kernel side of the simulated device, one registered opener at a time."""


class FsService:
    """The reference filesystem service in a thread, for one test."""

    def __init__(self, path: str, mounts: list[Mount]) -> None:
        self.mounts = list(mounts)
        self.changes: list[tuple[tuple[int, int], bool]] = []
        self.server = SimFsServer(path, lambda: self.mounts,
                                  on_change=lambda fsid, on: self.changes.append((fsid, on)))
        self.path = path
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def suspended(self) -> frozenset:
        return self.server.suspended

    def suspended_paths(self) -> set[str]:
        return {m.mount_on for m in self.mounts if m.fsid in self.server.suspended}

    def close(self) -> None:
        self.server.shutdown()
        self._thread.join(5)
        self.server.close()


@dataclass
class Lab:
    dir: Path
    kernel_path: str
    fs_path: str
    hooks_dir: Path
    state_file: Path
    pidfile: Path
    log_file: Path

    def write_hook(self, name: str, body: str = "exit 0", mode: int = 0o755) -> Path:
        """A /bin/sh hook that appends '<name> <action>' to the journal, then runs body."""
        path = self.hooks_dir / name
        path.write_text(f'#!/bin/sh\necho "{name} $1" >> "{self.dir / "journal"}"\n{body}\n')
        path.chmod(mode)
        return path

    def journal(self) -> list[str]:
        path = self.dir / "journal"
        return path.read_text().splitlines() if path.exists() else []

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    # AF_UNIX paths are limited to ~107 bytes: keep the sockets in a short directory
    short = Path(tempfile.mkdtemp(prefix="vss", dir="/tmp"))
    hooks = tmp_path / "vss.d"
    hooks.mkdir(mode=0o755)
    hooks.chmod(0o755)
    yield Lab(tmp_path, str(short / "fsvss"), str(short / "fs"), hooks,
              tmp_path / "state.json", tmp_path / "vssd.pid", tmp_path / "messages")
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


@pytest.fixture
def kernel(lab: Lab) -> FakeKernel:
    fake = FakeKernel(lab.kernel_path)
    yield fake
    fake.close()


@pytest.fixture
def kernel_factory():
    """More fake kernels (the app channel): kernel_factory(path)."""
    made: list[FakeKernel] = []

    def make(path: str) -> FakeKernel:
        made.append(FakeKernel(path))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def make_fs(lab: Lab, table: str | list[Mount]) -> FsService:
    return FsService(lab.fs_path, TABLES[table] if isinstance(table, str) else table)


@pytest.fixture
def fs_factory(lab: Lab):
    started: list[FsService] = []

    def start(table: str | list[Mount]) -> FsService:
        service = make_fs(lab, table)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


class DaemonProcess:
    def __init__(self, lab: Lab, *extra: str, foreground: bool = True,
                 device: Optional[str] = None) -> None:
        self.lab = lab
        self.stderr_path = lab.dir / f"stderr.{time.monotonic_ns()}"
        argv = [sys.executable, "-m", "hvbsd.vss",
                "--device", device or lab.kernel_path, "--sim-platform", lab.fs_path,
                "--hooks-dir", str(lab.hooks_dir), "--state-file", str(lab.state_file),
                "--pidfile", str(lab.pidfile), "--log-file", str(lab.log_file), *extra]
        if foreground:
            argv.insert(3, "-n")
        env = dict(os.environ, PYTHONPATH=str(SRC))
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=stderr, env=env)

    def wait(self, timeout: float = 8.0) -> int:
        return self.proc.wait(timeout)

    def signal(self, number: int) -> None:
        self.proc.send_signal(number)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def daemons():
    started: list[DaemonProcess] = []

    def start(lab: Lab, *extra: str, **kwargs) -> DaemonProcess:
        process = DaemonProcess(lab, *extra, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def m():
    """The mount constants and tables, for tests that name them."""
    return types.SimpleNamespace(
        ROOT_UFS=ROOT_UFS, VAR_UFS=VAR_UFS, LOCAL_UFS=LOCAL_UFS, DEVFS=DEVFS, TMPFS=TMPFS,
        PROCFS=PROCFS, ZROOT=ZROOT, ZLOG=ZLOG, TANK=TANK, NFS=NFS, RO_UFS=RO_UFS,
        TABLES=TABLES, SRC=SRC, ROOT=ROOT)
