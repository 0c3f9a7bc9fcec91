"""Hook discovery, safety checks and timeouts."""

from __future__ import annotations

import os
import time

import pytest

from hvbsd.vss.hooks import HookDirError, Hooks


def hooks_of(lab, timeout=2.0):
    return Hooks(str(lab.hooks_dir), timeout, owner_uid=os.getuid())


def test_only_executable_regular_files_are_hooks_in_lexical_order(lab):
    lab.write_hook("20-b")
    lab.write_hook("10-a")
    lab.write_hook("README", mode=0o644)
    lab.write_hook(".hidden")
    lab.write_hook("30-c~")
    (lab.hooks_dir / "sub").mkdir()
    assert hooks_of(lab).discover() == ["10-a", "20-b"]


def test_missing_hook_directory_means_no_hooks(lab):
    assert Hooks(str(lab.dir / "absent"), 1.0).discover() == []


def test_hook_directory_that_is_a_file_is_refused(lab):
    path = lab.dir / "file"
    path.write_text("")
    with pytest.raises(HookDirError, match="is not a directory"):
        Hooks(str(path), 1.0).discover()


def test_group_writable_hook_is_refused_by_name(lab):
    hook = lab.write_hook("10-a", mode=0o775)
    with pytest.raises(HookDirError, match=f"{hook} is writable by group or others"):
        hooks_of(lab).discover()


def test_hook_owned_by_someone_else_is_refused(lab):
    lab.write_hook("10-a")
    with pytest.raises(HookDirError, match="owned by uid 0, not 4242"):
        Hooks(str(lab.hooks_dir), 1.0, owner_uid=4242).discover()


def test_hook_gets_its_action_and_its_output_is_kept(lab):
    lab.write_hook("10-a", 'echo "quiesced with $HVBSD_VSS_ACTION"')
    result = hooks_of(lab).run("10-a", "freeze")
    assert result.ok and result.output == "quiesced with freeze"
    assert lab.journal() == ["10-a freeze"]


def test_hook_timeout_kills_the_hook_and_its_children(lab):
    marker = lab.dir / "child-survived"
    lab.write_hook("10-slow", f'(sleep 2; touch "{marker}") & sleep 30')
    started = time.monotonic()
    result = hooks_of(lab, timeout=0.3).run("10-slow", "freeze")
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 2.0
    time.sleep(2.3)
    assert not marker.exists()


def test_hook_that_cannot_be_executed_reports_why(lab):
    path = lab.hooks_dir / "10-bad"
    path.write_text("#!/nonexistent/interpreter\n")
    path.chmod(0o755)
    result = hooks_of(lab).run("10-bad", "freeze")
    assert not result.ok and result.returncode is None
    assert "could not run" in result.describe()
