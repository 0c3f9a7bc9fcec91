"""The getopt(3) helper the simulated FreeBSD commands share, and its usage errors."""

from __future__ import annotations

import pytest

from hvbsd.sim.freebsd._common import GetOpt, UsageError


def parse(argv: list[str], optstring: str = "abf:t:", **quirks: bool):
    options = GetOpt(argv, optstring, **quirks)
    return list(options), options.operands


def test_clustered_flags_and_an_attached_argument():
    assert parse(["-ab", "-ffile", "x"]) == ([("a", ""), ("b", ""), ("f", "file")], ["x"])


def test_argument_in_the_next_word_even_when_it_looks_like_an_option():
    assert parse(["-af", "-b", "x"]) == ([("a", ""), ("f", "-b")], ["x"])
    assert parse(["-t", "--", "-a"]) == ([("t", "--"), ("a", "")], [])
    assert parse(["-t", ""]) == ([("t", "")], [])


def test_the_rest_of_a_cluster_after_an_argument_letter_is_its_argument():
    assert parse(["-tab", "x"]) == ([("t", "ab")], ["x"])


def test_double_dash_ends_options_and_is_dropped():
    assert parse(["-a", "--", "-b"]) == ([("a", "")], ["-b"])


def test_first_operand_and_lone_dash_end_options():
    assert parse(["x", "-a"]) == ([], ["x", "-a"])
    assert parse(["-a", "-", "-b"]) == ([("a", "")], ["-", "-b"])
    assert parse(["", "-a"]) == ([], ["", "-a"])
    assert parse([]) == ([], [])


def test_missing_argument():
    with pytest.raises(UsageError) as caught:
        parse(["-a", "-f"])
    assert (caught.value.letter, caught.value.missing_argument) == ("f", True)
    assert caught.value.message("stat") == "stat: option requires an argument -- f\n"


@pytest.mark.parametrize("word, letter", [("-az", "z"), ("-:", ":"), ("--help", "-")])
def test_illegal_option(word, letter):
    with pytest.raises(UsageError) as caught:
        parse([word])
    assert (caught.value.letter, caught.value.missing_argument) == (letter, False)
    assert caught.value.message("logger") == f"logger: illegal option -- {letter}\n"


def test_options_before_an_error_are_yielded_in_order():
    seen = []
    with pytest.raises(UsageError):
        for letter, value in GetOpt(["-t", "tag", "-az"], "at:"):
            seen.append((letter, value))
    assert seen == [("t", "tag"), ("a", "")]


def test_quirk_double_dash_is_an_illegal_option():
    with pytest.raises(UsageError) as caught:
        parse(["--", "x"], double_dash=False)
    assert caught.value.letter == "-"


def test_quirk_lone_dash_is_skipped():
    assert parse(["-", "-a", "x"], dash_is_operand=False) == ([("a", "")], ["x"])


def test_report_writes_message_and_usage(capsys):
    assert UsageError("z", False).report("sysrc", "usage: sysrc\n", 1) == 1
    assert capsys.readouterr().err == "sysrc: illegal option -- z\nusage: sysrc\n"
    assert UsageError("F", True).report("pgrep", "usage: pgrep\n", 2, name_missing=False) == 2
    assert capsys.readouterr().err == "usage: pgrep\n"


@pytest.mark.parametrize(
    "command, argv, status, stderr_start",
    [
        ("stat", ["-t"], 1, "stat: option requires an argument -- t\nusage: stat "),
        ("stat", ["-Lz", "/"], 1, "stat: illegal option -- z\nusage: stat "),
        ("logger", ["-p", "bad.info", "-Z"], 1, "logger: unknown facility name: bad\n"),
        ("daemon", ["-cfs", "bogus", "true"], 4, "daemon: unrecognized syslog priority\n"),
        ("daemon", ["-l", "mark", "true"], 5, "daemon: unrecognized syslog facility\n"),
        ("pgrep", ["-F"], 2, "usage: pgrep "),
        ("pkill", ["-q", "x"], 2, "pkill: illegal option -- q\nusage: pkill "),
        ("dhclient", ["--", "hn0"], 1, "dhclient: illegal option -- -\nusage: dhclient "),
        ("sysctl", ["-nz"], 1, "sysctl: illegal option -- z\nusage: sysctl "),
        ("sysrc", ["-f"], 1, "No arg for -f option\nUsage: sysrc "),
        ("service", ["-", "-z"], 1, "service: illegal option -- z\nusage: service "),
    ],
)
def test_commands_report_usage_errors_as_freebsd(run_command, command, argv, status, stderr_start):
    result = run_command(command, *argv)
    assert (result.returncode, result.stdout) == (status, "")
    assert result.stderr.startswith(stderr_start)
