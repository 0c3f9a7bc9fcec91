"""molecule's scenarios (molecule/): ``molecule test`` of the default one
against simulated guests, and the files of the Vagrant one, which cannot run
here (no Vagrant, no VM provider)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from hvbsd.locate import data_root

pytestmark = pytest.mark.slow

REPO = data_root()
MOLECULE = REPO / "molecule"
MOLECULE_TEST_TIMEOUT = 1200


def _molecule() -> str:
    found = shutil.which("molecule", path=os.path.dirname(sys.executable) + os.pathsep
                         + os.environ.get("PATH", ""))
    if found is None:
        pytest.skip("molecule is not installed (pip install molecule)")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("HVBSD_SIM_HOME", None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", NO_COLOR="1", PY_COLORS="0",
               COLUMNS="200")
    return env


def _require_namespaces() -> None:
    from hvbsd.sim import namespace

    reason = namespace.probe()
    if reason is not None:
        pytest.skip(f"simulated guests unavailable: {reason}")


def _scenario(name: str) -> dict:
    return yaml.safe_load((MOLECULE / name / "molecule.yml").read_text(encoding="utf-8"))


def test_molecule_test_of_the_default_scenario_converges_is_idempotent_and_passes_the_checks():
    molecule = _molecule()
    _require_namespaces()
    # The scenario's ephemeral directory (guests included) in a short scratch path
    # of this test's own (unix socket paths inside a guest are limited in length).
    ephemeral = Path(tempfile.mkdtemp(prefix="hvbsd-molecule-"))
    env = _env()
    env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(ephemeral)
    try:
        ran = subprocess.run([molecule, "test", "-s", "default"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=MOLECULE_TEST_TIMEOUT,
                             check=False)
        sim_home = ephemeral / "sim"
        guests_left = sorted(p.name for p in sim_home.iterdir()) if sim_home.is_dir() else []
        for name in guests_left:  # a failed destroy: stop what it left before removing it
            subprocess.run([sys.executable, "-m", "hvbsd", "sim", "guest", "destroy", "--state-dir",
                            str(sim_home), name], capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(ephemeral, ignore_errors=True)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output[-6000:]
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert re.search(rf"default\s+\W+\s+{action}: Executed: Successful", output), \
            (action, output[-6000:])
    # The checks of tests/infra ran, with the running host's tier: something passed, nothing failed.
    summary = re.search(r"(\d+) passed", output)
    assert summary and int(summary.group(1)) > 0, output[-6000:]
    assert not re.search(r"\d+ failed", output), output[-6000:]
    # destroy removed every guest: the scenario's guest directory holds none.
    assert guests_left == [], guests_left


def test_molecule_verify_fails_when_a_converged_file_was_changed_on_the_guest():
    """verify is the checks of tests/infra: a devd rules file edited after converge fails it."""
    molecule = _molecule()
    _require_namespaces()
    ephemeral = Path(tempfile.mkdtemp(prefix="hvbsd-molecule-"))
    env = _env()
    env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(ephemeral)
    sim_home = ephemeral / "sim"

    def run(*argv: str, timeout: float = MOLECULE_TEST_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    try:
        converged = run(molecule, "converge", "-s", "default")
        assert converged.returncode == 0, (converged.stdout + converged.stderr)[-6000:]
        tampered = run(sys.executable, "-m", "hvbsd", "sim", "guest", "exec", "--state-dir",
                       str(sim_home), "molecule-fbsd14", "--", "sh", "-c",
                       "echo '# edited by hand' >> /usr/local/etc/devd/hvbsd.conf", timeout=120)
        assert tampered.returncode == 0, tampered.stdout + tampered.stderr
        verified = run(molecule, "verify", "-s", "default")
    finally:
        destroyed = run(molecule, "destroy", "-s", "default")
        shutil.rmtree(ephemeral, ignore_errors=True)
    output = verified.stdout + verified.stderr
    assert verified.returncode != 0, output[-6000:]
    wrong = "/usr/local/etc/devd/hvbsd.conf: content differs from hvbsd render"
    assert wrong in output, output[-6000:]
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr


def test_default_scenario_runs_the_collections_roles_on_hvbsd_sim_guests():
    scenario = _scenario("default")
    assert scenario["driver"]["name"] == "default"
    inventory = scenario["provisioner"]["inventory"]["group_vars"]["all"]
    assert inventory["ansible_connection"] == "hvbsd.hyperv.hvbsd_sim"
    assert "idempotence" in scenario["scenario"]["test_sequence"]
    converge = yaml.safe_load((MOLECULE / "default" / "converge.yml").read_text(encoding="utf-8"))
    roles = [role["role"] for play in converge for role in play["roles"]]
    assert roles == ["hvbsd.hyperv.hyperv_vss", "hvbsd.hyperv.hyperv_guest"]
    for role in roles:
        assert (REPO / "roles" / role.rsplit(".", 1)[1] / "tasks" / "main.yml").is_file()


def test_vagrant_scenario_names_boxes_the_vagrantfile_defines():
    from hvbsd.lab.vagrant import MACHINES

    scenario = _scenario("vagrant")
    names = [platform["name"] for platform in scenario["platforms"]]
    # MACHINES are the Vagrantfile's, as Ruby evaluates it (test_lab_vagrant's probe)
    assert names and set(names) <= set(MACHINES), names
    converge = (MOLECULE / "vagrant" / scenario["provisioner"]["playbooks"]["converge"]).resolve()
    assert converge.is_file(), converge


def test_molecule_scenarios_pass_yamllint():
    files = sorted(str(path) for path in MOLECULE.rglob("*.yml"))
    assert len(files) >= 8, files
    ran = subprocess.run([sys.executable, "-m", "yamllint", "-s", *files], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_vagrant_scenario_playbooks_pass_molecule_syntax_check():
    molecule = _molecule()
    ran = subprocess.run([molecule, "syntax", "-s", "vagrant"], cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
