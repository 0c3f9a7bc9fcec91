"""cpuset(1) as FreeBSD's usr.bin/cpuset/cpuset.c, in rc.subr's form: cpuset -l LIST cmd."""

from __future__ import annotations

import pytest

from hvbsd.sim.freebsd.cpuset import USAGE, parse_list


def test_runs_the_command_on_the_cpus(run_command):
    result = run_command("cpuset", "-l", "0", "sh", "-c", "echo ran; exit 4")
    assert (result.returncode, result.stdout) == (4, "ran\n")
    assert run_command("cpuset", "-l", "0-1", "true").returncode == 0
    assert run_command("cpuset", "-l", "all", "true").returncode == 0


def test_a_cpu_the_kernel_lacks_is_refused(run_command):
    # the simulated guest has hw.ncpu=2
    result = run_command("cpuset", "-l", "5", "true")
    expected = (1, "cpuset: setaffinity: Resource deadlock avoided\n")
    assert (result.returncode, result.stderr) == expected


def test_a_malformed_list_is_refused(run_command):
    result = run_command("cpuset", "-l", "0-", "true")
    assert (result.returncode, result.stderr) == (1, "cpuset: Malformed cpu-list 0-\n")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", {0}),
        ("0-3", {0, 1, 2, 3}),
        ("1,3-4", {1, 3, 4}),
        ("0,,1", {0, 1}),
        ("0-", None),
        ("-1", None),
        ("1-2-3", None),
        ("a", None),
        ("1024", None),
    ],
)
def test_parselist(text, expected):
    assert parse_list(text) == expected


@pytest.mark.parametrize("argv", [[], ["-c"], ["-l", "0", "-p", "1", "true"], ["-z"]])
def test_usage(run_command, argv):
    result = run_command("cpuset", *argv)
    assert result.returncode == 1 and result.stderr.endswith(USAGE)


def test_missing_command_is_127(run_command):
    result = run_command("cpuset", "-l", "0", "no-such-command-here")
    assert result.returncode == 127
