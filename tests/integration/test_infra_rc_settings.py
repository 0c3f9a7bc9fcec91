"""tests/infra's rc.conf check (test_guest_settings.py) against deployed simulated guests:
it reads every value hvbsd writes, single-quoted ones too, as rc(8) sees it through the
guest's sysrc, an appended ``${cloned_interfaces}`` included."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECK = "tests/infra/test_guest_settings.py::test_rc_conf_settings_are_what_rc_sees"


def example(name: str, **changes: Any) -> dict[str, Any]:
    variables = copy.deepcopy(yaml.safe_load((ROOT / "examples" / name).read_text()))
    variables.update(changes)
    return variables


def check_rc_conf(guest: Any, variables: dict[str, Any], env: dict[str, str],
                  tmp_path: Path) -> subprocess.CompletedProcess[str]:
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    hosts = f"hvbsd-sim://{guest.name}?state_dir={guest.state_dir.parent}"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--import-mode=importlib", f"--hosts={hosts}", f"--hvbsd-vars={vars_file}",
         "--hvbsd-live", str(ROOT / CHECK)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)


def test_static_lagg_appended_to_empty_cloned_interfaces_passes(sim_guests, hvbsd_env,
                                                                 tmp_path):
    variables = example("azure-lagg.yml", hyperv_guest_static_lagg=True)
    guest = sim_guests("rcstatic")
    install_rendered(guest, variables)
    assert guest.exec(["sysrc", "-n", "cloned_interfaces"], text=True,
                      check=True).stdout == " lagg0\n"

    result = check_rc_conf(guest, variables, hvbsd_env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_a_single_quoted_value_rc_does_not_see_is_reported(sim_guests, hvbsd_env, tmp_path):
    variables = example("static-dual-stack.yml")
    guest = sim_guests("rcquoted", nics=2)
    install_rendered(guest, variables)
    # A later line wins in rc.conf: rc no longer sees the address hvbsd wrote.
    guest.exec(["sh", "-c", "echo \"ifconfig_hn0='inet 192.0.2.99/24'\" >> /etc/rc.conf"],
               check=True)

    result = check_rc_conf(guest, variables, hvbsd_env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert ("ifconfig_hn0: rc sees 'inet 192.0.2.99/24' (exit 0), hvbsd sets"
            " ifconfig_hn0='inet 192.0.2.10/24'") in result.stdout


def test_every_value_of_a_deployed_guest_passes(sim_guests, hvbsd_env, tmp_path):
    variables = example("static-dual-stack.yml")
    guest = sim_guests("rcclean", nics=2)
    install_rendered(guest, variables)

    result = check_rc_conf(guest, variables, hvbsd_env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
