"""rtsol(8) as FreeBSD's usr.sbin/rtsold/rtsold.c in rtsol mode (options "adDFO:R:u")."""

from __future__ import annotations

import pytest

from hvbsd.sim.freebsd.rtsol import USAGE


def _solicited(kernel_dir):
    path = kernel_dir / "solicitations"
    return path.read_text().split() if path.exists() else []


def test_a_solicitation_is_recorded_and_the_interface_is_up(run_command, kernel_dir):
    result = run_command("rtsol", "hn0")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert _solicited(kernel_dir) == ["hn0"]
    assert "<UP," in run_command("ifconfig", "hn0").stdout


def test_F_sets_accept_rtadv(run_command, kernel_dir):
    assert run_command("rtsol", "-F", "hn1").returncode == 0
    assert "ACCEPT_RTADV" in run_command("ifconfig", "hn1").stdout


def test_a_solicits_interfaces_accepting_advertisements(run_command, kernel_dir):
    run_command("ifconfig", "hn0", "inet6", "accept_rtadv", "up")
    run_command("ifconfig", "hn1", "up")
    assert run_command("rtsol", "-a").returncode == 0
    assert _solicited(kernel_dir) == ["hn0"]


def test_an_unknown_interface_fails(run_command, kernel_dir):
    result = run_command("rtsol", "hn7")
    assert (result.returncode, result.stderr) == (
        1,
        "rtsol: failed to get link layer information for hn7\nrtsol: failed to initialize hn7\n",
    )
    assert _solicited(kernel_dir) == []


@pytest.mark.parametrize(
    "argv, message",
    [([], ""), (["-a", "hn0"], ""), (["-z", "hn0"], "rtsol: illegal option -- z\n")],
)
def test_usage(run_command, argv, message):
    result = run_command("rtsol", *argv)
    assert (result.returncode, result.stderr) == (1, message + USAGE)


def test_scripts_must_be_absolute(run_command):
    result = run_command("rtsol", "-O", "x.sh", "hn0")
    assert (result.returncode, result.stderr) == (
        1,
        "rtsol: configuration script (x.sh) must be an absolute path\n",
    )
