"""testinfra's hvbsd-sim:// backend: a check file run by real pytest against a guest."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data"
CHECKS = DATA / "infra" / "check_guest.py"


def install_probe_service(guest) -> None:
    ansible_data = DATA / "ansible"
    files = {
        "/usr/local/sbin/hvbsd_probed": ((ansible_data / "hvbsd_probed").read_bytes(), "755"),
        "/usr/local/etc/rc.d/hvbsd_probe": ((ansible_data / "hvbsd_probe.rc").read_bytes(), "755"),
        "/usr/local/etc/hvbsd_probe.conf": (b"greeting=testinfra\n", "640"),
    }
    for path, (content, mode) in files.items():
        guest.exec(["sh", "-c", 'cat > "$1" && chmod "$2" "$1"', "sh", path, mode],
                   input=content, check=True)
    started = guest.exec(
        ["sh", "-c", "sysrc hvbsd_probe_enable=YES && service hvbsd_probe start"], text=True
    )
    assert started.returncode == 0, started.stdout + started.stderr
    # The daemon writes its pidfile after `service start` returns, as on FreeBSD.
    deadline = time.monotonic() + 15
    while guest.exec(["service", "hvbsd_probe", "status"]).returncode != 0:
        assert time.monotonic() < deadline, "hvbsd_probe never reported running"
        time.sleep(0.1)


def run_checks(hosts: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--import-mode=importlib", f"--hosts={hosts}", str(CHECKS)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def test_check_file_passes_against_a_guest(sim_guest, sim_root, hvbsd_env, tmp_path):
    install_probe_service(sim_guest)
    env = dict(hvbsd_env, HVBSD_SIM_HOME=str(tmp_path / "elsewhere"))
    result = run_checks(f"hvbsd-sim://g1?state_dir={sim_root}", env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout
    assert "[hvbsd-sim://g1]" in result.stdout or "7 passed" in result.stdout


def test_guest_is_found_through_hvbsd_sim_home(sim_guest, hvbsd_env, tmp_path):
    install_probe_service(sim_guest)
    result = run_checks("hvbsd-sim://g1", hvbsd_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checks_fail_when_the_service_is_stopped(sim_guest, hvbsd_env, tmp_path):
    install_probe_service(sim_guest)
    sim_guest.exec(["service", "hvbsd_probe", "stop"], check=True)
    result = run_checks("hvbsd-sim://g1", hvbsd_env, tmp_path)
    assert result.returncode == 1
    assert "1 failed, 6 passed" in result.stdout
    assert "test_probe_service_is_enabled_and_running" in result.stdout


def test_unknown_guest_is_a_clear_error(hvbsd_env, tmp_path, sim_root):
    result = run_checks("hvbsd-sim://nosuch", hvbsd_env, tmp_path)
    assert result.returncode != 0
    assert f"hvbsd-sim://nosuch: guest 'nosuch': no such guest in {sim_root}" in result.stdout


def test_other_schemes_keep_testinfra_parsing(monkeypatch):
    import testinfra.backend

    import hvbsd.sim.testinfra_backend as plugin

    plugin.register()
    plugin.register()  # idempotent
    assert testinfra.backend.BACKENDS["hvbsd-sim"] == plugin._CLASS_PATH
    host, options = testinfra.backend.parse_hostspec("hvbsd-sim://g7?state_dir=/srv/sim")
    assert (host, options) == ("g7", {"connection": "hvbsd-sim", "state_dir": "/srv/sim"})
    host, options = testinfra.backend.parse_hostspec("ssh://box?state_dir=/srv/sim")
    assert (host, options) == ("box", {"connection": "ssh"})
    backend = testinfra.backend.get_backend("hvbsd-sim://g7?state_dir=/srv/sim")
    assert isinstance(backend, plugin.HvbsdSimBackend)
    assert backend.state_dir == "/srv/sim"
