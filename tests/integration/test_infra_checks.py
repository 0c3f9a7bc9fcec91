"""tests/infra, run by plain pytest + testinfra (and by `hvbsd check`) against deployed
simulated guests: through the hvbsd-sim backend, whose simulator is the guests' Hyper-V
host, and through ansible's hvbsd_sim connection, where the checks see a host like any
production guest, with no simulated Hyper-V host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VARS = ROOT / "examples" / "static-dual-stack.yml"
FLEET = Path(__file__).resolve().parent / "data" / "infra" / "fleet"
NO_HOST = "no simulated Hyper-V host on ansible://"

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


def hvbsd_check(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`hvbsd check ...` run from /, as a user with the package installed would."""
    return subprocess.run([sys.executable, "-m", "hvbsd", "check", *argv], env=env, cwd="/",
                          capture_output=True, text=True, timeout=600, check=False)


def fleet_env(hvbsd_env: dict[str, str], scratch: Path) -> dict[str, str]:
    from hvbsd.locate import ansible_environment

    return dict(hvbsd_env, **ansible_environment(scratch), ANSIBLE_LOCAL_TEMP=str(scratch))


def test_fleet_in_one_ansible_run_each_host_checked_with_its_group_vars_scenarios_skip(
        sim_guests, hvbsd_env, tmp_path):
    from hvbsd.render.inventory import inventory_hosts

    variables = inventory_hosts(str(FLEET / "inventory.yml"))
    for name in ("f1", "f2"):
        install_rendered(sim_guests(name, nics=1), variables[name])
    hosts = f"ansible://all?ansible_inventory={FLEET / 'inventory.yml'}"
    result = hvbsd_check(f"--hosts={hosts}", "--live", "--", "-rs", "-q",
                         env=fleet_env(hvbsd_env, tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # tiers 1-2 ran on both hosts (the daemon checks skip: hyperv_vss_enable is false)
    for name in ("f1", "f2"):
        assert f"test_every_rendered_file_is_in_place_byte_for_byte[ansible://{name}]" \
            not in out, out
    assert "failed" not in out and "error" not in out.lower(), out
    assert "16 passed" in out, out
    # tier 3 skipped on each host, saying why; f2 (transparent) has no lagg either
    assert out.count(NO_HOST) >= 2, out
    assert f"{NO_HOST}f1" in out and f"{NO_HOST}f2" in out, out


def test_fleet_check_names_the_host_whose_files_differ_from_its_own_group_vars(
        sim_guests, hvbsd_env, tmp_path):
    from hvbsd.render.inventory import inventory_hosts

    variables = inventory_hosts(str(FLEET / "inventory.yml"))
    install_rendered(sim_guests("f1", nics=1), variables["f1"])
    install_rendered(sim_guests("f2", nics=1), variables["f1"])  # f2 got the lagg group's
    hosts = f"ansible://all?ansible_inventory={FLEET / 'inventory.yml'}"
    result = hvbsd_check(f"--hosts={hosts}", "--", "-m", "hvbsd_files", "-q",
                         env=fleet_env(hvbsd_env, tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "test_files_the_configuration_does_not_want_are_absent[ansible://f2]" in out
    assert "present: /usr/local/libexec/hvbsd/hvbsd.subr" in out
    assert "[ansible://f1]" not in out.split("short test summary")[-1], out


def test_hvbsd_check_from_root_runs_the_shipped_checks_on_a_sim_guest(
        sim_guests, hvbsd_env):
    import yaml

    guest = sim_guests("infra", nics=2)
    install_rendered(guest, yaml.safe_load(VARS.read_text()))
    hosts = f"hvbsd-sim://{guest.name}?state_dir={guest.state_dir.parent}"
    result = hvbsd_check(f"--hosts={hosts}", f"--hvbsd-vars={VARS}", "--", "-q",
                         env=hvbsd_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


def test_hvbsd_check_without_hosts_is_a_usage_error(hvbsd_env):
    result = hvbsd_check(env=hvbsd_env)
    assert result.returncode == 2
    assert "the following arguments are required: --hosts" in result.stderr
    assert "Traceback" not in result.stderr


def test_hvbsd_check_exit_status_is_pytests_for_a_missing_variables_file(sim_guest, hvbsd_env,
                                                                          tmp_path):
    hosts = f"hvbsd-sim://{sim_guest.name}?state_dir={sim_guest.state_dir.parent}"
    result = hvbsd_check(f"--hosts={hosts}", f"--hvbsd-vars={tmp_path / 'nosuch.yml'}",
                         "--", "-q", "-m", "hvbsd_files", env=hvbsd_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"--hvbsd-vars: {tmp_path / 'nosuch.yml'}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_scenarios_skip_where_hvbsd_box_is_installed_but_not_set_up(sim_guests, hvbsd_env,
                                                                    tmp_path):
    from hvbsd.render.inventory import inventory_hosts

    variables = inventory_hosts(str(FLEET / "inventory.yml"))
    guest = sim_guests("f1", nics=1)
    install_rendered(guest, variables["f1"])
    played = "/var/db/hvbsd-box-was-run"
    guest.exec(["sh", "-c", f"printf '#!/bin/sh\\ntouch {played}\\n' > /usr/local/bin/hvbsd-box"
                " && chmod 755 /usr/local/bin/hvbsd-box"], check=True)
    hosts = f"ansible://f1?ansible_inventory={FLEET / 'inventory.yml'}"
    result = hvbsd_check(f"--hosts={hosts}", "--live", "--", "-q", "-rs", "-m",
                         "hvbsd_scenarios", env=fleet_env(hvbsd_env, tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "5 skipped" in out, out
    assert "hvbsd-box is installed on ansible://f1 but not set up" in out, out
    assert not guest.path(played).exists(), "a scenario ran hvbsd-box on a host not set up"
