"""`$variable` expansion in actions, raw and quoted, proven with a real sh."""

from __future__ import annotations

import subprocess

import pytest

from hvbsd.devd import expand, shell_quote
from hvbsd.devd.dispatch import devd_shell
from hvbsd.devd.expand import brace_references, variable_references

VALUES = {"subsystem": "hn0", "subsystem-x": "OTHER", "*": "!whole", "_": "whole"}


def lookup(name):
    return VALUES.get(name)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("ifconfig $subsystem up", "ifconfig hn0 up"),
        ("$subsystem-x", "OTHER"),  # '-' belongs to the name
        ("$subsystem.x", "hn0.x"),
        ("$subsystem_y", ""),  # unknown name: empty
        ("cost $$5", "cost $5"),
        ("$$subsystem", "$subsystem"),
        ("echo $(cat /f $subsystem) $subsystem", "echo $(cat /f $subsystem) hn0"),
        ("echo $(a (b) c)x", "echo $(a (b) c)x"),
        ("echo $(unclosed $subsystem", "echo $(unclosed $subsystem"),
        ("echo ${subsystem}", "echo ${subsystem}"),
        ("echo $1 $ x", "echo $1 $ x"),
        ("trailing $", "trailing $"),
        ("$* and $_", "!whole and whole"),
    ],
)
def test_raw_expansion_follows_devd(template, expected):
    assert expand(template, lookup, quoting="raw") == expected


def test_quoted_mode_wraps_each_value_in_one_dollar_quote_word():
    assert expand("x $subsystem $nothing", lookup, quoting="quoted") == "x $'hn0' $''"
    assert shell_quote("it's a \\ test") == "$'it\\'s a \\\\ test'"


def test_unknown_quoting_mode_is_refused():
    with pytest.raises(ValueError, match="quoting 'shell' is not one of raw, quoted"):
        expand("x", lookup, quoting="shell")


def test_reference_scanners_see_what_devd_sees():
    assert variable_references("a $x $$y $(z $w) $v-1 ${u}") == ["x", "v-1"]
    found = brace_references("a ${subsystem} $${x} $(echo ${y}) ${open")
    assert found == ["${subsystem}", "${open"]


def sh_words(command: str) -> list[str]:
    """The argument words sh builds from `command` (run as the arguments of `set --`)."""
    script = f"set -- {command}\n" + 'for word in "$@"; do printf "<%s>\\n" "$word"; done'
    completed = subprocess.run([*devd_shell(), "-c", script], capture_output=True, text=True,
                               check=True)
    return [line[1:-1] for line in completed.stdout.splitlines()]


@pytest.mark.parametrize("value", ["hn0;reboot", "hn0 $(touch x)", "it's", "a\\b", "`id`", "a b"])
def test_quoted_value_is_exactly_one_shell_word(value):
    command = expand("$subsystem", {"subsystem": value}.get, quoting="quoted")
    assert sh_words(command) == [value]


def test_raw_value_is_shell_syntax_and_quoted_value_is_not(tmp_path):
    marker = tmp_path / "injected"
    value = f"hn0;touch {marker}"
    template = "echo $subsystem >/dev/null"
    shell = [*devd_shell(), "-c"]
    subprocess.run([*shell, expand(template, {"subsystem": value}.get, quoting="quoted")],
                   check=True)
    assert not marker.exists()
    subprocess.run([*shell, expand(template, {"subsystem": value}.get, quoting="raw")],
                   check=True)
    assert marker.exists()


def test_brace_form_reaches_sh_and_expands_to_nothing():
    command = expand("printf '<%s>' ${subsystem}", lookup, quoting="quoted")
    out = subprocess.run([*devd_shell(), "-c", command], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.stdout == "<>"
