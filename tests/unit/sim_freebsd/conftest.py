"""Fixtures for the FreeBSD command layer: a kernel state and a throwaway guest root.

``run_command`` runs one FreeBSD command as its own Python process, as the
guest does.  ``guest_root`` builds overlay upper layers for /etc, /usr and
/var holding FreeBSD's base files and wrappers for the commands, and
``guest_root.sh(script)`` runs the guest's ``/bin/sh`` (FreeBSD's sh on
bash, as in a guest) in a new user, mount and PID namespace where those
overlays are mounted, so scripts that source ``/etc/rc.subr`` by absolute
path find ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd.sim import freebsd
from hvbsd.sim.guest import group_file
from hvbsd.sim.kernel import Kernel


@pytest.fixture
def kernel_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "kernel"
    Kernel.create(directory, hostname="g1", preset="mixed", nics=2)
    return directory


@pytest.fixture
def run_command(kernel_dir: Path, tmp_path: Path):
    def run(name: str, *args: str, input: str | None = None, env: dict | None = None):
        environment = dict(os.environ)
        environment["HVBSD_SIM_KERNEL_DIR"] = str(kernel_dir)
        environment["HVBSD_SIM_SYSLOG"] = str(tmp_path / "messages")
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "hvbsd.sim.freebsd", name, *args],
            capture_output=True,
            text=True,
            input=input,
            env=environment,
            check=False,
            timeout=60,
        )

    return run


def _namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0 and os.path.islink("/sbin") and os.path.islink("/bin")


class GuestRoot:
    def __init__(self, top: Path, kernel_directory: Path) -> None:
        self.top = top
        self.kernel_dir = kernel_directory
        self.upper = {name: top / "upper" / name for name in ("etc", "usr", "var")}
        for name, upper in self.upper.items():
            upper.mkdir(parents=True)
            (top / "work" / name).mkdir(parents=True)
        for directory in freebsd.BASE_DIRECTORIES:
            if directory.split("/")[1] in self.upper:
                self.path(directory).mkdir(parents=True, exist_ok=True)
        for guest_path, content, mode in freebsd.base_files():
            self.write(guest_path, content.decode(), mode)
        # the guest's /etc/group: the host's plus FreeBSD's wheel, as a guest has it
        with open("/etc/group", encoding="utf-8") as stream:
            self.write("/etc/group", group_file(stream.read()).decode())
        for guest_path in freebsd.COMMANDS:
            name = os.path.basename(guest_path)
            self.write(
                guest_path,
                f'#!/bin/sh\nexec {sys.executable} -m hvbsd.sim.freebsd {name} "$@"\n',
                0o755,
            )
        # the guest's /bin/sh: FreeBSD's sh on bash, as a guest has it
        bash = freebsd.host_bash()
        assert bash, "no bash on this host: a simulated guest's /bin/sh needs it"
        self.write(freebsd.SH_PATH, freebsd.sh_wrapper(bash).decode(), 0o755)

    def path(self, guest_path: str) -> Path:
        """Where a guest path lives in the upper layers (merged /usr: /sbin is /usr/sbin)."""
        if guest_path.startswith(("/sbin/", "/bin/")):
            guest_path = "/usr" + guest_path
        top, _, rest = guest_path.lstrip("/").partition("/")
        return self.upper[top] / rest

    def write(self, guest_path: str, text: str, mode: int = 0o644) -> Path:
        target = self.path(guest_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
        return target

    def sh(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        mounts = " && ".join(
            f"mount -t overlay overlay -o lowerdir=/{name},upperdir={upper},"
            f"workdir={self.top / 'work' / name} /{name}"
            for name, upper in self.upper.items()
        )
        environment = {
            "PATH": "/sbin:/bin:/usr/sbin:/usr/bin",
            "HOME": "/",
            "HVBSD_SIM_KERNEL_DIR": str(self.kernel_dir),
        }
        return subprocess.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "/bin/sh",
                "-c",
                f'{mounts} && exec /bin/sh -c "$0"',
                script,
            ],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
            timeout=timeout,
        )


@pytest.fixture
def guest_root(tmp_path: Path, kernel_dir: Path) -> GuestRoot:
    if not _namespaces_work():
        pytest.skip("needs user+mount namespaces and a merged /usr")
    return GuestRoot(tmp_path / "root", kernel_dir)
