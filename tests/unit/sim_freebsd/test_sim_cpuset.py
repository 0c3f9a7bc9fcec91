"""cpuset(1) as FreeBSD's usr.bin/cpuset/cpuset.c, in rc.subr's form: cpuset -l LIST cmd."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _ranges(cpus: set[int]) -> str:
    words, ordered = [], sorted(cpus)
    start = previous = ordered[0]
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == previous + 1:
            previous = cpu
            continue
        words.append(str(start) if start == previous else f"{start}-{previous}")
        if cpu is not None:
            start = previous = cpu
    return ",".join(words)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=1023), min_size=1, max_size=40))
def test_parselist_reads_back_any_cpu_list(cpus):
    assert parse_list(_ranges(cpus)) == cpus


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1024, max_value=10**6))
def test_parselist_refuses_cpus_past_the_set_size(cpu):
    assert parse_list(str(cpu)) is None
