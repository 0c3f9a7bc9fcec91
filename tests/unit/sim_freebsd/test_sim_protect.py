"""protect(1) as FreeBSD's usr.bin/protect/protect.c, in rc.subr's forms (-p, -d -i -p)."""

from __future__ import annotations

import os

import pytest

from hvbsd.sim.freebsd.protect import USAGE


def test_an_existing_process_is_protected(run_command):
    assert run_command("protect", "-p", str(os.getpid())).returncode == 0
    assert run_command("protect", "-d", "-i", "-p", str(os.getpid())).returncode == 0


def test_a_missing_process_is_esrch(run_command):
    result = run_command("protect", "-p", "999999")
    assert (result.returncode, result.stderr) == (1, "protect: procctl: No such process\n")


def test_a_command_runs_protected(run_command):
    result = run_command("protect", "-i", "sh", "-c", "echo ran; exit 3")
    assert (result.returncode, result.stdout) == (3, "ran\n")
    missing = run_command("protect", "no-such-command-here")
    assert (missing.returncode, missing.stderr) == (
        127,
        "protect: no-such-command-here: No such file or directory\n",
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], ""),
        (["-d", "true"], ""),
        (["-p", "1", "true"], ""),
        (["-p", "x"], "protect: invalid process id\n"),
        (["-p", "1", "-g", "1"], "protect: only one -g or -p flag is permitted\n"),
    ],
)
def test_usage(run_command, argv, message):
    result = run_command("protect", *argv)
    assert (result.returncode, result.stderr) == (1, message + USAGE)


def test_an_unknown_letter_is_reported_and_ignored(run_command):
    result = run_command("protect", "-z", "-p", str(os.getpid()))
    assert (result.returncode, result.stderr) == (0, "protect: illegal option -- z\n")


def test_a_missing_argument_is_reported_and_ends_the_options(run_command):
    alone = run_command("protect", "-p")
    assert (alone.returncode, alone.stderr) == (
        1,
        "protect: option requires an argument -- p\n" + USAGE,
    )
    after_an_id = run_command("protect", "-p", str(os.getpid()), "-g")
    assert (after_an_id.returncode, after_an_id.stderr) == (
        0,
        "protect: option requires an argument -- g\n",
    )
