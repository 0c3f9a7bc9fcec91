"""sysrc -R dir: FreeBSD's sysrc checks the host's files, then runs itself again inside
chroot(8) of dir, where RC_DEFAULTS names that root's defaults file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _root(top: Path) -> Path:
    """A root holding a shell (with its libraries), /dev/null and rc.conf files."""
    shell = shutil.which("dash") or "/bin/sh"
    root = top / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(os.path.realpath(shell), root / "bin" / "sh")
    listed = subprocess.run(["ldd", shell], capture_output=True, text=True, check=False)
    for word in listed.stdout.split():
        if word.startswith("/") and os.path.exists(word):
            target = root / word.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(word, target)
    (root / "dev").mkdir()
    try:
        os.mknod(root / "dev" / "null", 0o20666, os.makedev(1, 3))
    except OSError:
        pytest.skip("needs mknod for the root's /dev/null")
    (root / "etc" / "defaults").mkdir(parents=True)
    defaults = 'rc_conf_files="/etc/rc.conf"\nsource_rc_confs() { . /etc/rc.conf; }\nhostname=""\n'
    inner = root / top.relative_to("/") / "defaults.conf"
    inner.parent.mkdir(parents=True, exist_ok=True)
    inner.write_text(defaults)
    (root / "etc" / "rc.conf").write_text('hostname="inside"\n')
    # the host's own defaults (checked first, as FreeBSD's sysrc does) name no files
    host_defaults = 'rc_conf_files="/nowhere/rc.conf"\nsource_rc_confs() { :; }\n'
    (top / "defaults.conf").write_text(host_defaults)
    return root


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot(2) needs root")
def test_R_reads_and_writes_inside_the_root(tmp_path):
    root = _root(tmp_path)
    environment = dict(os.environ, RC_DEFAULTS=str(tmp_path / "defaults.conf"))

    def sysrc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hvbsd.sim.freebsd", "sysrc", "-R", str(root), *args],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )

    assert sysrc("hostname").stdout == "hostname: inside\n"
    changed = sysrc("-v", "hostname=new")
    assert (changed.returncode, changed.stdout) == (0, "/etc/rc.conf: hostname: inside -> new\n")
    assert (root / "etc" / "rc.conf").read_text() == 'hostname="new"\n'
    assert sysrc("-n", "hostname").stdout == "new\n"
