"""limits(1) as FreeBSD's usr.bin/limits/limits.c, above all as rc.subr starts daemons:
``limits -C $login_class $limits command args`` (run_rc_command's _doit)."""

from __future__ import annotations

import re

import pytest

from hvbsd.sim.freebsd.limits import USAGE


def test_rc_subr_form_runs_the_command(run_command):
    result = run_command("limits", "-C", "daemon", "sh", "-c", "echo started; exit 5")
    assert (result.returncode, result.stdout, result.stderr) == (5, "started\n", "")


def test_limits_given_are_applied_to_the_command(run_command):
    result = run_command("limits", "-C", "daemon", "-n", "64", "sh", "-c", "ulimit -n")
    assert (result.returncode, result.stdout) == (0, "64\n")
    attached = run_command("limits", "-n64", "sh", "-c", "ulimit -n")
    assert attached.stdout == "64\n"


def test_leading_assignments_go_to_the_environment(run_command):
    result = run_command("limits", "-C", "daemon", "FOO=bar", "sh", "-c", 'echo "$FOO"')
    assert result.stdout == "bar\n"
    cleaned = run_command("limits", "-E", "ONLY=1", "env")
    assert cleaned.stdout == "ONLY=1\n"


def test_an_unknown_class_falls_back_to_default(run_command):
    result = run_command("limits", "-C", "nosuch", "true")
    assert (result.returncode, result.stderr) == (
        0,
        "login class 'nosuch' non-existent, using default\n",
    )


def test_display_as_limits_prints_it(run_command):
    result = run_command("limits")
    lines = result.stdout.splitlines()
    assert lines[0] == "Resource limits (current):"
    assert len(lines) == 17
    assert all(re.fullmatch(r"  [a-z-]+(-cur|-max)?\s+(infinity|\d+)( secs| kB| bytes)?", x)
               for x in lines[1:])
    assert run_command("limits", "-C", "daemon", "-n").stdout.startswith(
        "Resource limits for class daemon:\n  openfiles"
    )


def test_eval_form_is_ulimit_commands(run_command):
    result = run_command("limits", "-e", "-n")
    assert re.fullmatch(r"ulimit( -S)? -n \d+;\n", result.stdout)
    assert run_command("limits", "-eB", "-t").stdout == "ulimit -t unlimited;\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-z"], ""),  # getopt is silent: limits.c's optstring starts with ':'
        (["-n", "10x", "true"], "limits: invalid value -n `10x'\n"),
        (["-U", "no-such-user", "true"], "limits: invalid user `no-such-user'\n"),
        (["-e", "true"], "limits: -e cannot be used with `cmd' option\n"),
        (["FOO=1"], ""),
    ],
)
def test_usage(run_command, argv, message):
    result = run_command("limits", *argv)
    assert (result.returncode, result.stderr) == (1, message + USAGE)


def test_a_missing_command_is_an_error(run_command):
    result = run_command("limits", "-C", "daemon", "no-such-command-here")
    assert (result.returncode, result.stderr) == (
        1,
        "limits: no-such-command-here: No such file or directory\n",
    )


def test_sizes_and_times_take_units(run_command):
    assert run_command("limits", "-f", "1k", "sh", "-c", "ulimit -f").stdout == "2\n"
    assert run_command("limits", "-t", "1m", "sh", "-c", "ulimit -t").stdout == "60\n"
