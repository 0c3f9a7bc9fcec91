"""hvbsd's own devd rules never hand a hostile interface name to a shell, whichever way
devd expands values: raw (older devd pastes them into the command line) or quoted
(devd 14.x and later, one ``$'...'`` word each).

The rules are rendered by `hvbsd render`'s engine and loaded after the stock files,
as on a guest; events go through the project's dispatcher, whose actions run with
a real shell. A canary file shows whether any injected command ran.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvbsd.devd import DEVD_PATH, Dispatcher, Event, parse_text
from hvbsd.devd.dispatch import devd_shell
from hvbsd.render import render_host

ROOT = Path(__file__).resolve().parents[3]
HVBSD_FILE = "/usr/local/etc/devd/hvbsd.conf"
LIBEXEC = "/usr/local/libexec/hvbsd"
MODES = ("raw", "quoted")

# FreeBSD's /etc/devd/hyperv.conf rules for the same events: they paste $subsystem too
STOCK_HYPERV = """
notify 10 { match "system" "HYPERV_NIC_VF"; match "type" "VF_UP";
  action "/usr/libexec/hyperv/hyperv_vfup $subsystem"; };
notify 10 { match "system" "ETHERNET"; match "type" "IFATTACH";
  action "/usr/libexec/hyperv/hyperv_vfattach $subsystem 0"; };
"""
# hvbsd's IFATTACH rule as it was before it matched the name: the control case
UNGUARDED = """
notify 20 { match "system" "ETHERNET"; match "type" "IFATTACH";
  action "/usr/local/libexec/hvbsd/hyperv_vfattach $subsystem 0"; };
"""

EVENTS = {
    "ifattach": ("ETHERNET", "IFATTACH", ("hyperv_vfattach", "{name}", "0")),
    "vf-up": ("HYPERV_NIC_VF", "VF_UP", ("hyperv_vfup", "{name}")),
}


def hostile_names(canary: Path) -> list[str]:
    """Interface names as an attacker would send them: each one tries to run `touch canary`."""
    touch = f"touch {canary}"
    metacharacters = ";&|<>()$`\\\"' \t\n*?[]#~=%!{}^,"
    names = [f"hn0{char}{touch}" for char in metacharacters]
    names += [
        f"$({touch})", f"`{touch}`", f"hn0$({touch})", f"hn0`{touch}`",
        f"hn0;{touch};", f"hn0&&{touch}", f"hn0||{touch}", f"hn0 ; {touch}",
        f"';{touch};'", f'";{touch};"', f"hn0'$({touch})'", f"hn0\n{touch}\n",
        f"hn0\r\n{touch}", f">{canary}", f"hn0>{canary}", f"${{IFS}}{touch}",
        f"$'\\x3b'{touch}", f"mce0;{touch}", f"mce0\x00;{touch}", f"hn0\\;{touch}",
        "-rf", "--help", "../../etc/passwd", "hn0 hn1", "", " ", "hn" + "0" * 40,
        "HN0;reboot", f"hn0\u037e{touch}", "\uff48\uff4e0", "hn\u0660", f"hn0\u2028{touch}",
        f"hn0\u00a0{touch}", "hn0\u200b", "mce\U0001f4a50", f"hn0\udcff{touch}",
    ]
    return names


def stock_and_hvbsd(variables: dict, *, hvbsd_text: str | None = None, icase: bool = True):
    text = hvbsd_text if hvbsd_text is not None else (
        render_host(variables)[HVBSD_FILE].content.decode())
    config = parse_text(STOCK_HYPERV, "/etc/devd/hyperv.conf", icase=icase)
    return config.extend(text, HVBSD_FILE)


LAGG = {"hyperv_guest_mode": "lagg", "hyperv_guest_interfaces": [{"name": "hn0"}]}


def words(command: str) -> list[str]:
    """The argv a shell builds from an action line (the script replaced by a printer)."""
    script, _, rest = command.partition(" ")
    printer = "words() { for word; do printf '%s\\0' \"$word\"; done; }; words "
    shown = subprocess.run([*devd_shell(), "-c", f"{printer}{script} {rest}"],
                           env={"PATH": DEVD_PATH}, capture_output=True, check=True).stdout
    return [word.decode("utf-8", "surrogateescape") for word in shown.split(b"\0")[:-1]]


@functools.cache
def grammar():
    """The interface-name grammar of the variable checks (the one place that defines it)."""
    from hvbsd.render.engine import CHECKS_FILE as path
    from hvbsd.render.engine import checks_module

    module = checks_module()
    pattern = getattr(module, "INTERFACE_NAME", None)
    longest = getattr(module, "MAX_IFNAME", None)
    assert isinstance(pattern, re.Pattern) and isinstance(longest, int), (
        f"{path} no longer exports INTERFACE_NAME and MAX_IFNAME")
    return pattern, longest


def in_grammar(name: str) -> bool:
    pattern, longest = grammar()
    return pattern.fullmatch(name) is not None and len(name) <= longest


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def folded(name: str) -> str:
    """What REG_ICASE in the C locale folds: ASCII letters only."""
    return name.translate(_ASCII_LOWER)


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path, monkeypatch):
    """Actions run by a real shell (and, in the control, injected commands such as
    `touch canary 0` or `>touch`) write relative paths into the test's own directory."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("quoting", MODES)
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_no_hostile_name_runs_code_through_hvbsds_rules(tmp_path, quoting, event):
    canary = tmp_path / "canary"
    system, kind, _argv = EVENTS[event]
    dispatcher = Dispatcher(stock_and_hvbsd(LAGG), quoting=quoting, action_timeout=30)
    names = hostile_names(canary)
    assert len(names) > 50
    for name in names:
        record = dispatcher.dispatch(Event.notify(system, name, kind))
        assert not canary.exists(), f"{quoting} devd ran code from {name!r}: {record.describe()}"
        # a NUL ends the line (devd reads a C string) and an unclosed quote ends the pairs:
        # either can leave the event without its type, and then no rule matches at all
        if record.event.get("type") == kind:
            assert record.rule is not None and record.rule.file == HVBSD_FILE, (
                f"{name!r} reached {record.rule.file if record.rule else None}")
        seen = record.event.get("subsystem")
        if record.commands:  # only a name of the grammar gets this far
            assert in_grammar(seen), (name, record.commands)
        else:
            assert not in_grammar(seen), name


@pytest.mark.parametrize("quoting", MODES)
def test_the_control_an_unguarded_rule_runs_the_canary_with_raw_expansion_only(
    tmp_path, quoting
):
    canary = tmp_path / "canary"
    dispatcher = Dispatcher(stock_and_hvbsd({}, hvbsd_text=UNGUARDED), quoting=quoting)
    ran = []
    for name in hostile_names(canary):
        dispatcher.dispatch(Event.notify("ETHERNET", name, "IFATTACH"))
        if canary.exists():
            ran.append(name)
            canary.unlink()
    if quoting == "raw":
        assert len(ran) > 10, ran  # what issue 10 item 4 reproduced: the test can fail
    else:
        assert ran == []


@pytest.mark.parametrize("quoting", MODES)
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_names_of_the_grammar_reach_the_script_as_exactly_one_word(tmp_path, quoting, event):
    system, kind, argv = EVENTS[event]
    ran: list[str] = []
    dispatcher = Dispatcher(stock_and_hvbsd(LAGG), quoting=quoting,
                            run=lambda command: ran.append(command) or 0)
    for name in ("hn0", "mce12", "mlxen3", "mana0", "a" * 14 + "9"):
        ran.clear()
        dispatcher.dispatch(Event.notify(system, name, kind))
        expected = [f"{LIBEXEC}/{argv[0]}", *(word.format(name=name) for word in argv[1:])]
        assert len(ran) == 1 and words(ran[0]) == expected, (name, ran)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=24), quoting=st.sampled_from(MODES),
       event=st.sampled_from(sorted(EVENTS)))
def test_any_name_either_reaches_the_script_as_one_grammar_word_or_runs_nothing(
    name, quoting, event
):
    system, kind, argv = EVENTS[event]
    ran: list[str] = []
    dispatcher = Dispatcher(CONFIG, quoting=quoting, run=lambda command: ran.append(command) or 0)
    record = dispatcher.dispatch(Event.notify(system, name, kind))
    if record.event.get("type") == kind:
        assert record.rule is not None and record.rule.file == HVBSD_FILE
    else:
        assert record.rule is None
    seen = record.event.get("subsystem")
    if record.event.get("type") == kind and in_grammar(folded(seen)):
        expected = [f"{LIBEXEC}/{argv[0]}", *(word.format(name=seen) for word in argv[1:])]
        assert [words(command) for command in ran] == [expected]
    else:
        assert ran == []


CONFIG = stock_and_hvbsd(LAGG)
EXACT = stock_and_hvbsd(LAGG, icase=False)  # as devd before 14.x compiled them


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abmz059AZ_-;. \n\u00e9\u212a", max_size=18))
def test_the_rules_accept_exactly_the_names_of_the_interface_name_grammar(name):
    for config, seen in ((EXACT, name), (CONFIG, folded(name))):
        guarded = [rule for rule in config.rules
                   if rule.file == HVBSD_FILE and rule.actions
                   and "$subsystem" in rule.actions[0].command
                   and "hyperv_linkup" not in rule.actions[0].command]
        assert len(guarded) == 2  # IFATTACH and VF_UP
        for rule in guarded:
            (subsystem,) = [match for match in rule.matches if match.variable == "subsystem"]
            # REG_ICASE (14.x) also lets upper case through: still no shell character
            assert subsystem.test(name) == in_grammar(seen), (rule.line, name)


def test_grammar_boundaries_are_the_same_in_the_rules():
    for name in ("a0", "a" * 14 + "0", "a" * 15 + "0", "0a", "a", "a0a", "lagg0", "hn00"):
        event = Event.notify("HYPERV_NIC_VF", name, "VF_UP")
        rule = CONFIG.first_match(event)
        assert rule is not None and bool(rule.actions) == in_grammar(name), name
