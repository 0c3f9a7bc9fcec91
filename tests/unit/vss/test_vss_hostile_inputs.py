"""What the daemon does with inputs it does not control: its state file, hook output,
hook processes, and the paths it writes (issue 10, item 6 and the daemon's part of 2)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvbsd.vss import cli as vss_cli
from hvbsd.vss.daemon import print_status
from hvbsd.vss.protocol import Op, Status
from hvbsd.vss.state import State, StateError, parse_state

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")


def lab_src():
    return SRC


def wait_for(predicate, timeout=8.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def status_of(lab):
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd.vss", "--status", "--state-file", str(lab.state_file)],
        capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=SRC))
    return result.returncode, result.stdout


def serving(kernel):
    return kernel.request(Op.CHECK).status == Status.SUCCESS

DAMAGED = {
    "filesystems is a number": {"frozen": True, "filesystems": 5},
    "hooks is a number": {"frozen": True, "hooks": 7},
    "pid is a huge float": {"frozen": True, "pid": 1e23},
    "pid is a huge int": {"frozen": True, "pid": 10 ** 30},
    "pid is a bool": {"frozen": True, "pid": True},
    "frozen is a string": {"frozen": "yes"},
    "hook escapes the directory": {"frozen": True, "hooks": ["../../bin/sh"]},
    "last is a list": {"frozen": True, "last": [1, 2]},
    "running is a string": {"frozen": True, "running": "10-db"},
    "a list": [1, 2, 3],
}


def write_raw(lab, content: bytes) -> None:
    lab.state_file.write_bytes(content)


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_status_of_a_damaged_state_file_is_unknown_never_frozen(lab, name):
    write_raw(lab, json.dumps(DAMAGED[name]).encode())
    code, text = status_of(lab)
    assert code == 2 and text.startswith("hvbsd_vssd: state unknown:")


@pytest.mark.parametrize("content", [
    b"[" * 100000, b"\xff\xfe{}", b'{"frozen": true, "pid": ' + b"9" * 5000 + b"}",
    b"{" + b'"k": 1,' * 20000 + b'"frozen": true}'],
    ids=["deep-nesting", "not-utf8", "5000-digit-pid", "larger-than-64k"])
def test_status_of_unparseable_or_oversized_state_is_unknown(lab, content):
    write_raw(lab, content)
    assert status_of(lab)[0] == 2


@pytest.mark.parametrize("kind", ["dev-zero-symlink", "fifo", "directory", "dev-null-symlink"])
def test_status_never_reads_or_blocks_on_a_non_regular_state_file(lab, kind):
    path = lab.state_file
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero" if kind == "dev-zero-symlink" else "/dev/null")
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd.vss", "--status", "--state-file", str(path)],
        capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=lab_src()))
    assert result.returncode == 2 and "state unknown" in result.stdout


@pytest.mark.parametrize("name", ["filesystems is a number", "hooks is a number",
                                  "pid is a huge float", "hook escapes the directory"])
def test_daemon_starts_and_serves_on_a_damaged_state_file(lab, kernel, fs_factory, daemons,
                                                          name):
    lab.write_hook("10-db")
    write_raw(lab, json.dumps(DAMAGED[name]).encode())
    fs_factory("ufs_only")
    daemon = daemons(lab)
    kernel.wait_connected()
    assert serving(kernel) and daemon.running
    assert "state file unusable" in lab.log_text()
    assert lab.journal() == []  # an unknown state thaws nothing
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert status_of(lab)[0] == 0  # the daemon's own state replaced the damaged one


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
state_like = st.fixed_dictionaries({}, optional={
    "frozen": json_values, "pid": json_values, "filesystems": json_values,
    "hooks": json_values, "running": json_values, "last": json_values,
    "updated": json_values, "version": json_values})


@settings(max_examples=300, deadline=None)
@given(st.one_of(state_like, json_values))
def test_state_parser_either_returns_a_typed_state_or_says_why(value):
    try:
        state = parse_state(json.dumps(value).encode())
    except StateError as exc:
        assert str(exc)
        return
    assert isinstance(state, State) and isinstance(value, dict)
    assert state.frozen is value["frozen"]
    assert all(isinstance(h, str) and "/" not in h for h in state.hooks)
    assert state.pid is None or (type(state.pid) is int and 0 < state.pid < 2 ** 31)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_state_parser_never_raises_anything_else_on_bytes(data):
    with contextlib.suppress(StateError):
        parse_state(data)


# hook output and processes, run through the daemon's Hooks in a child process (the
# daemon becomes the reaper of its descendants; pytest should not)

RUN_HOOK = """
import json, sys
from hvbsd.vss.hooks import Hooks
from hvbsd.vss.procs import Reaper
directory, name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
result = Hooks(directory, timeout, owner_uid=0, reaper=Reaper()).run(name, "freeze")
print(json.dumps({"ok": result.ok, "timed_out": result.timed_out, "output": result.output,
                  "discarded": result.discarded,
                  "returncode": result.returncode, "text": result.describe()}))
"""


def run_hook(lab, name, timeout):
    result = subprocess.run([sys.executable, "-c", RUN_HOOK, str(lab.hooks_dir), name,
                             str(timeout)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=lab_src()))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_hook_output_is_capped_and_cleaned_while_the_pipe_is_drained(lab):
    lab.write_hook("10-loud", "printf 'a\\000b\\033[31m\\n'; head -c 50000000 /dev/zero")
    result = run_hook(lab, "10-loud", 60)
    assert result["ok"], result["text"]  # the hook was not blocked on a full pipe
    assert len(result["output"]) < 70 * 1024
    assert "\x00" not in result["output"] and "\x1b" not in result["output"]
    assert result["discarded"] == 50000000 + 9 - 64 * 1024  # every byte was read


def test_hook_that_exits_0_while_its_child_holds_stdout_succeeds(lab):
    lab.write_hook("10-bg", "sleep 30 & echo started; exit 0")
    result = run_hook(lab, "10-bg", 5)
    assert result["ok"] and not result["timed_out"], result["text"]
    assert result["output"] == "started"


def test_hook_exit_status_is_its_verdict_even_with_a_child_holding_stdout(lab):
    lab.write_hook("10-bg", "sleep 30 & exit 3")
    result = run_hook(lab, "10-bg", 5)
    assert result["returncode"] == 3 and not result["timed_out"]


def test_hook_timeout_kills_children_that_left_its_session(lab):
    pids = lab.dir / "pids"
    lab.write_hook("10-escape", f"""
setsid sh -c 'echo $$ >> "{pids}"; exec sleep 60' &
(setsid sh -c 'echo $$ >> "{pids}"; exec sleep 60' &)
sh -c 'echo $$ >> "{pids}"; exec sleep 60' &
sleep 60""")
    result = run_hook(lab, "10-escape", 1.5)
    assert result["timed_out"]
    survivors = [int(p) for p in pids.read_text().split()]
    assert len(survivors) == 3

    def gone(pid):
        try:
            with open(f"/proc/{pid}/stat") as stream:
                return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    assert wait_for(lambda: all(gone(p) for p in survivors))


def test_daemon_log_has_no_nul_from_hook_output(lab, kernel, fs_factory, daemons):
    lab.write_hook("10-nul", "printf 'x\\000y\\001z'; exit 1")
    fs_factory("ufs_only")
    daemons(lab)
    kernel.wait_connected()
    assert kernel.request(Op.FREEZE).status == Status.FAIL
    assert wait_for(lambda: "x?y?z" in lab.log_text())
    assert "\x00" not in lab.log_text()


# paths the daemon and bundle-vssd write


@pytest.mark.parametrize("which", ["--state-file", "--pidfile"])
@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo", "device"])
def test_daemon_refuses_a_state_or_pid_path_that_is_not_a_regular_file(
        lab, kernel, fs_factory, daemons, tmp_path, which, kind):
    fs_factory("ufs_only")
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    target = tmp_path / "target"
    if kind == "symlink":
        target.symlink_to(victim)
    elif kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target = "/dev/null"
    daemon = daemons(lab, which, str(target))
    assert daemon.wait() == 2
    assert "refusing to replace it" in daemon.stderr()
    assert victim.read_text() == "keep me\n"
    assert not kernel.connected.is_set()  # it never opened the device


def test_state_file_swapped_for_a_symlink_while_running_is_not_followed(
        lab, kernel, fs_factory, daemons, tmp_path):
    fs_factory("ufs_only")
    daemons(lab)
    kernel.wait_connected()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    assert wait_for(lab.state_file.exists)
    lab.state_file.unlink()
    lab.state_file.symlink_to(victim)
    assert kernel.request(Op.CHECK).status == Status.SUCCESS
    assert wait_for(lambda: "cannot write the state file" in lab.log_text())
    assert victim.read_text() == "keep me\n" and lab.state_file.is_symlink()
    assert [p.name for p in lab.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_writes_leave_no_temporaries_and_stale_ones_are_removed_at_start(
        lab, kernel, fs_factory, daemons):
    stale = lab.dir / f".{lab.state_file.name}.0123456789abcdef.tmp"
    stale.write_text("left by a killed daemon")
    fs_factory("ufs_only")
    daemons(lab)
    kernel.wait_connected()
    kernel.request(Op.FREEZE)
    kernel.request(Op.THAW)
    assert wait_for(lambda: not stale.exists())
    # the daemon answers before it records the answer: look once the THAW is on disk
    assert wait_for(lambda: '"THAW"' in lab.state_file.read_text())
    assert [p.name for p in lab.dir.iterdir() if p.name.endswith(".tmp")] == []


def _bundle(out, capsys):
    code = vss_cli.run(argparse.Namespace(out=str(out), interpreter=vss_cli.DEFAULT_INTERPRETER))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["/dev/full", "directory", "symlink", "fifo", "empty"])
def test_bundle_refuses_an_out_that_is_not_a_regular_file(tmp_path, capsys, kind):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "out"
    if kind == "/dev/full":
        out = "/dev/full"
    elif kind == "directory":
        out.mkdir()
    elif kind == "symlink":
        out.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        out = ""
    before = os.lstat("/dev/full")
    code, err = _bundle(out, capsys)
    assert code == 2 and err.startswith("hvbsd bundle-vssd: ") and err.count("\n") == 1
    assert victim.read_text() == "keep me"
    assert os.lstat("/dev/full").st_rdev == before.st_rdev
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_bundle_replaces_an_existing_regular_file(tmp_path, capsys):
    out = tmp_path / "hvbsd_vssd"
    out.write_text("old")
    code, _ = _bundle(out, capsys)
    assert code == 0 and out.read_bytes().startswith(b"#!/usr/local/bin/python3\n")
    assert (out.stat().st_mode & 0o777) == 0o755


def _peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as stream:
        for line in stream:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_daemon_memory_stays_small_while_a_hook_prints_200_mb(lab, kernel, fs_factory, daemons):
    lab.write_hook("10-loud", '[ "$1" = freeze ] && head -c 200000000 /dev/zero; exit 0')
    fs_factory("ufs_only")
    daemon = daemons(lab, "--hook-timeout", "60", "--budget", "14")
    kernel.wait_connected()
    assert kernel.request(Op.FREEZE, timeout=60).status == Status.SUCCESS
    assert _peak_rss_mb(daemon.proc.pid) < 80
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert wait_for(lambda: "200000000 bytes" not in lab.log_text()
                    and "more bytes of output discarded" in lab.log_text())


def test_daemon_kills_what_a_timed_out_hook_double_forked_out_of_its_session(
        lab, kernel, fs_factory, daemons):
    pids = lab.dir / "pids"
    lab.write_hook("10-escape", f"""[ "$1" = thaw ] && exit 0
(setsid sh -c 'echo $$ >> "{pids}"; exec sleep 60' &)
sleep 60""")
    fs_factory("ufs_only")
    daemons(lab, "--hook-timeout", "1")
    kernel.wait_connected()
    assert kernel.request(Op.FREEZE).status == Status.FAIL
    escaped = int(pids.read_text())

    def gone():
        try:
            with open(f"/proc/{escaped}/stat") as stream:
                return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    assert wait_for(gone)


def test_daemon_freeze_succeeds_when_a_hook_exits_0_leaving_a_child_on_its_output(
        lab, kernel, fs_factory, daemons, m):
    lab.write_hook("10-bg", '[ "$1" = freeze ] && sleep 30 & exit 0')
    service = fs_factory("ufs_only")
    daemons(lab, "--hook-timeout", "2")
    kernel.wait_connected()
    assert kernel.request(Op.FREEZE).status == Status.SUCCESS
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert kernel.request(Op.THAW).status == Status.SUCCESS
    assert "killed after" not in lab.log_text()


@settings(max_examples=200, deadline=None)
@given(st.one_of(state_like, json_values))
def test_status_says_frozen_only_for_a_state_that_parses_as_frozen(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("status") / "state"
    data = json.dumps(value).encode()
    path.write_bytes(data)
    try:
        expected = 1 if parse_state(data).frozen else 0
    except StateError:
        expected = 2
    assert print_status(str(path)) == expected
