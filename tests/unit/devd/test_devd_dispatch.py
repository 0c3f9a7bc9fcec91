"""The dispatcher runs the chosen rule's actions with a real shell, as devd does."""

from __future__ import annotations

import os
import threading
import time

import pytest

from hvbsd.devd import DEVD_PATH, Dispatcher, Event, parse_text


def config_with(*actions: str, priority: int = 0, match: str = "IFNET"):
    body = "".join(f"\taction \"{action}\";\n" for action in actions)
    return parse_text(f'notify {priority} {{\n\tmatch "system" "{match}";\n{body}}};\n')


def test_actions_run_in_order_each_waited_for(tmp_path):
    log = tmp_path / "log"
    config = config_with(f"sleep 0.3; echo first >> {log}", f"echo second >> {log}")
    record = Dispatcher(config).dispatch(Event.notify("IFNET", "hn0", "ATTACH"))
    assert log.read_text().split() == ["first", "second"]
    assert record.statuses == (0, 0)
    assert record.durations[0] >= 0.3


def test_events_are_handled_strictly_one_at_a_time(tmp_path):
    log = tmp_path / "log"
    started = tmp_path / "started"
    config = parse_text(
        f'notify 0 {{ match "type" "SLOW"; action "touch {started}; sleep 0.4; '
        f'echo slow >> {log}"; }};\n'
        f'notify 0 {{ match "type" "FAST"; action "echo fast >> {log}"; }};\n'
    )
    dispatcher = Dispatcher(config)
    slow = threading.Thread(target=dispatcher.dispatch, args=("!system=X subsystem=Y type=SLOW",))
    slow.start()
    deadline = time.monotonic() + 5
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started.exists()
    dispatcher.dispatch("!system=X subsystem=Y type=FAST")
    slow.join()
    assert log.read_text().split() == ["slow", "fast"]


def test_actions_get_devds_path_and_nothing_else_from_our_environment(tmp_path, monkeypatch):
    out = tmp_path / "env"
    monkeypatch.setenv("HVBSD_SECRET", "leaked")
    # $$ is devd's escape for a '$' that the shell should see
    config = config_with(f"printf '%s|%s' $$PATH $${{HVBSD_SECRET:-unset}} > {out}")
    Dispatcher(config).dispatch(Event.notify("IFNET", "hn0", "ATTACH"))
    assert out.read_text() == f"{DEVD_PATH}|unset"


def test_actions_have_stdio_on_dev_null(tmp_path, capfd):
    out = tmp_path / "stdin"
    config = config_with(f"cat > {out}; echo to-stdout; echo to-stderr >&2")
    record = Dispatcher(config).dispatch(Event.notify("IFNET", "hn0", "ATTACH"))
    captured = capfd.readouterr()
    assert record.statuses == (0,)
    assert out.read_text() == ""
    assert "to-stdout" not in captured.out and "to-stderr" not in captured.err


def test_exit_statuses_are_recorded_and_later_actions_still_run(tmp_path):
    config = config_with("exit 3", f"touch {tmp_path / 'ran'}")
    record = Dispatcher(config).dispatch(Event.notify("IFNET", "hn0", "ATTACH"))
    assert record.statuses == (3, 0)
    assert (tmp_path / "ran").exists()


def test_values_reach_the_action_as_one_word_in_quoted_mode_and_as_code_in_raw_mode(tmp_path):
    marker = tmp_path / "pwned"
    args = tmp_path / "args"
    config = config_with(f"printf '<%s>' $subsystem > {args}")
    hostile = Event.notify("IFNET", f"hn0;touch {marker}", "ATTACH")
    Dispatcher(config, quoting="quoted").dispatch(hostile)
    assert args.read_text() == f"<hn0;touch {marker}>"
    assert not marker.exists()
    Dispatcher(config, quoting="raw").dispatch(hostile)
    assert marker.exists()  # the ';' ended printf's command and started touch


def test_injected_runner_log_and_media_lookup_are_used():
    ran: list[str] = []
    logged = []
    config = parse_text(
        'notify 0 { match "type" "LINK_UP"; media-type "ethernet"; '
        'action "service dhclient quietstart $subsystem"; };'
    )
    dispatcher = Dispatcher(config, run=lambda command: ran.append(command) or 7,
                            log=logged.append, media_type=lambda name: "ethernet")
    record = dispatcher.dispatch(Event.notify("IFNET", "hn0", "LINK_UP"))
    assert ran == ["service dhclient quietstart $'hn0'"]
    assert record.statuses == (7,)
    assert logged == [record]
    assert "hn0" in record.describe() and "-> 7" in record.describe()


def test_event_without_rule_runs_nothing_and_is_still_logged():
    logged = []
    dispatcher = Dispatcher(config_with("false"), run=lambda _c: pytest.fail("ran"),
                            log=logged.append)
    record = dispatcher.dispatch(Event.notify("DEVFS", "CDEV", "CREATE", cdev="x"))
    assert record.rule is None and record.commands == () and not record.matched
    assert logged == [record]
    assert record.describe().endswith("no rule")


def test_unknown_quoting_mode_is_refused():
    with pytest.raises(ValueError, match="quoting 'safe' is not one of raw, quoted"):
        Dispatcher(config_with("true"), quoting="safe")


def test_a_log_line_carries_no_newline_or_undecodable_byte_from_an_event(tmp_path):
    config = config_with(f"touch {tmp_path / 'ran'}")
    hostile = Event.notify("IFNET", "hn0\nFAKE: forged line\udcff\u2028", "ATTACH")
    line = Dispatcher(config).dispatch(hostile).describe()
    assert "\n" not in line and "\u2028" not in line
    assert "\\x0a" in line or "\\n" in line
    line.encode("ascii")  # any log file takes it, whatever its encoding


def test_a_rule_hvbsd_cannot_evaluate_is_passed_over_and_named():
    config = parse_text(
        'notify 9 {\n\tmatch "subsystem" "((a{255}){255}){255}";\n\taction "never";\n};\n'
        'notify 1 { match "system" "IFNET"; action "fallback"; };\n', "x.conf")
    ran: list[str] = []
    record = Dispatcher(config, run=lambda command: ran.append(command) or 0).dispatch(
        Event.notify("IFNET", "a" * 100, "ATTACH"))
    assert ran == ["fallback"]
    assert len(record.passed_over) == 1 and record.passed_over[0].startswith("x.conf:1: ")
    assert "passed over" in record.describe()


def test_an_action_that_never_ends_is_killed_with_its_children_at_the_timeout(tmp_path):
    pidfile = tmp_path / "child"
    config = config_with(f"sleep 300 & echo $$! > {pidfile}; wait")
    record = Dispatcher(config, action_timeout=1).dispatch(Event.notify("IFNET", "hn0", "ATTACH"))
    assert record.statuses == (-9,)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().split(") ")[-1].startswith("Z"):
                break
        time.sleep(0.05)
    else:
        pytest.fail("the action's background child outlived the timeout")
