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
    (["run", "--release", "14.3"], "--release: release '14.3': hvbsd supports FreeBSD 14.4, "),
    (["up", "--release", "15"], "--release: release '15': hvbsd supports FreeBSD"),
    (["run", "--release", "15.1;reboot"], "release '15.1;reboot': hvbsd supports"),
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


def _userns_limited_to_zero() -> bool:
    """Whether this machine lets a user namespace set its own user.max_user_namespaces."""
    import shutil

    if shutil.which("unshare") is None:
        return False
    tried = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                            "echo 0 > /proc/sys/user/max_user_namespaces"],
                           capture_output=True, timeout=30, check=False)
    return tried.returncode == 0


def test_where_user_namespaces_are_refused_the_message_says_which_setting_and_how_to_allow(
        tmp_path):
    if not _userns_limited_to_zero():
        pytest.skip("cannot run a process whose user namespaces are limited to 0 here")
    # A real kernel refusal: inside a user namespace whose limit is 0, unshare() fails.
    probe = ("from hvbsd.sim.namespace import probe; print(probe())")
    ran = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                          'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -c "$1"',
                          sys.executable, probe],
                         capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    message = ran.stdout.strip()
    assert message.startswith("cannot create user namespaces (")
    assert "user.max_user_namespaces=0" in message
    assert "sudo sysctl -w user.max_user_namespaces=" in message


def fake_proc_sys(root, values: dict) -> str:
    for name, value in values.items():
        path = root.joinpath(*name.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return str(root)


def test_ubuntu_apparmor_restriction_is_named_with_both_ways_to_allow(tmp_path):
    from hvbsd.sim.namespace import userns_advice

    advice = userns_advice(fake_proc_sys(tmp_path, {
        "kernel.apparmor_restrict_unprivileged_userns": 1, "user.max_user_namespaces": 63000}))
    assert "kernel.apparmor_restrict_unprivileged_userns=1" in advice
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in advice
    assert "/etc/sysctl.d/" in advice
    assert "AppArmor profile" in advice and "'userns,'" in advice and sys.executable in advice


def test_without_a_known_cause_the_advice_still_covers_apparmor(tmp_path):
    from hvbsd.sim.namespace import userns_advice

    advice = userns_advice(fake_proc_sys(tmp_path, {"user.max_user_namespaces": 63000}))
    assert "kernel.apparmor_restrict_unprivileged_userns=1" in advice
    assert "AppArmor profile" in advice
    assert "kernel.unprivileged_userns_clone" in advice


def test_debian_unprivileged_userns_clone_is_named(tmp_path):
    from hvbsd.sim.namespace import userns_advice

    advice = userns_advice(fake_proc_sys(tmp_path, {"kernel.unprivileged_userns_clone": 0}))
    assert "kernel.unprivileged_userns_clone=0" in advice
    assert "sudo sysctl -w kernel.unprivileged_userns_clone=1" in advice


def test_a_lab_up_with_one_release_refuses_another(tmp_path):
    import json

    state = tmp_path / "lab"
    state.mkdir()
    (state / "lab.json").write_text(json.dumps(
        {"provider": "sim", "release": "14.5", "targets": [{"name": "lab1"}]}))
    result = lab(tmp_path, "up", "--release", "15.1")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "is up with FreeBSD 14.5; run 'hvbsd lab down' first")
    assert len(result.stderr.strip().splitlines()) == 1
