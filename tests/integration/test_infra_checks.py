"""tests/infra, run by plain pytest + testinfra against a deployed simulated guest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VARS = ROOT / "examples" / "static-dual-stack.yml"



def run_checks(guest, env, cwd) -> subprocess.CompletedProcess:
    hosts = f"hvbsd-sim://{guest.name}?state_dir={guest.state_dir.parent}"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--import-mode=importlib", f"--hosts={hosts}", f"--hvbsd-vars={VARS}",
         str(ROOT / "tests" / "infra")],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_checks_pass_on_a_guest_deployed_as_rendered(sim_guests, hvbsd_env, tmp_path):
    import yaml

    guest = sim_guests("infra", nics=2)
    install_rendered(guest, yaml.safe_load(VARS.read_text()))
    result = run_checks(guest, hvbsd_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


def test_checks_name_the_file_that_drifted(sim_guests, hvbsd_env, tmp_path):
    import yaml

    guest = sim_guests("drift", nics=2)
    install_rendered(guest, yaml.safe_load(VARS.read_text()))
    guest.exec(["sh", "-c", "chmod 644 /usr/local/libexec/hvbsd/hyperv_vfup && "
                "echo '# edited' >> /usr/local/etc/devd/hvbsd.conf"], check=True)
    result = run_checks(guest, hvbsd_env, tmp_path)
    assert result.returncode == 1
    assert "/usr/local/libexec/hvbsd/hyperv_vfup: mode 644, not 755" in result.stdout
    assert "/usr/local/etc/devd/hvbsd.conf: content differs from hvbsd render" in result.stdout


def test_checks_require_the_variables_file(sim_guest, hvbsd_env, tmp_path):
    hosts = f"hvbsd-sim://{sim_guest.name}?state_dir={sim_guest.state_dir.parent}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--import-mode=importlib", f"--hosts={hosts}", str(ROOT / "tests" / "infra")],
        env=hvbsd_env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "--hvbsd-vars FILE is required" in result.stdout
