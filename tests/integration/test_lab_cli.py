"""`hvbsd lab`: bad input is refused with exit status 2 before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest


def lab(tmp_path, *argv) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, HVBSD_LAB_HOME=str(tmp_path / "lab"))
    return subprocess.run([sys.executable, "-m", "hvbsd", "lab", *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--provider", "nope"], "--provider 'nope': unknown provider (known: sim, vagrant)"),
    (["run", "--guests", "0"], "--guests 0: the number of guests must be 1 to 16"),
    (["up", "--guests", "a,a"], "a name is given twice"),
    (["run", "--guests", "1x;"], "give a number or guest names"),
    (["run", "--vars", "missing.yml"], "--vars missing.yml: no such file"),
    (["check"], "no lab is up in"),
    (["provision"], "no lab is up in"),
])
def test_bad_input_exits_2_with_a_clear_error(tmp_path, argv, message):
    result = lab(tmp_path, *argv)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "lab" / "sim").exists()


def test_variables_that_do_not_validate_are_refused(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("hyperv_guest_mode: sideways\n")
    result = lab(tmp_path, "run", "--vars", str(bad))
    assert result.returncode == 2
    assert "hyperv_guest_mode" in result.stderr


def test_status_of_no_lab(tmp_path):
    result = lab(tmp_path, "status")
    assert result.returncode == 0
    assert "no guests" in result.stdout
