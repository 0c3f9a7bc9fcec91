"""pwait(1) as FreeBSD's bin/pwait/pwait.c: waits, -o, -t (124), -v, bad ids, usage (64)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hvbsd.sim.freebsd.pwait import USAGE


def _sleeper(seconds: str) -> subprocess.Popen:
    return subprocess.Popen(["sleep", seconds])


def test_waits_until_the_process_exits(run_command):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    try:
        result = run_command("pwait", "-v", str(child.pid))
        # the parent has not reaped it: a zombie counts as exited, as on FreeBSD
        assert (result.returncode, result.stdout) == (0, f"{child.pid}: terminated.\n")
    finally:
        child.wait()


def test_timeout_exits_124(run_command):
    child = _sleeper("30")
    try:
        result = run_command("pwait", "-t", "0.2", "-v", str(child.pid))
        assert (result.returncode, result.stdout) == (124, "timeout\n")
    finally:
        child.kill()
        child.wait()


def test_o_returns_at_the_first_exit(run_command):
    long_one, short_one = _sleeper("30"), _sleeper("0")
    short_one.wait()
    try:
        result = run_command("pwait", "-o", str(long_one.pid), str(short_one.pid))
        assert result.returncode == 0
    finally:
        long_one.kill()
        long_one.wait()


def test_missing_and_bad_ids_are_warned_about(run_command):
    result = run_command("pwait", "999999", "12x", "-5")
    assert result.returncode == 0
    assert result.stderr == (
        "pwait: 999999: No such process\npwait: 12x: bad process id\npwait: -5: bad process id\n"
    )


@pytest.mark.parametrize(
    "argv, status, message",
    [
        ([], 64, USAGE),
        (["-z", "1"], 64, "pwait: illegal option -- z\n" + USAGE),
        (["-t", "x", "1"], 65, "pwait: timeout value\n"),
        (["-t", "5q", "1"], 65, "pwait: timeout unit\n"),
        (["-t", "-1", "1"], 65, "pwait: timeout value\n"),
    ],
)
def test_usage_and_data_errors(run_command, argv, status, message):
    result = run_command("pwait", *argv)
    assert (result.returncode, result.stderr) == (status, message)
