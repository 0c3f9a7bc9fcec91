"""CHECK / FREEZE / THAW against the reference filesystem service, in process."""

from __future__ import annotations

import os

import pytest

from hvbsd.vss.hooks import Hooks
from hvbsd.vss.log import Log, MemorySink
from hvbsd.vss.platform import SimPlatform
from hvbsd.vss.policy import Policy, Settings, make_plan


def make_policy(lab, service, hooks_timeout=2.0, **settings):
    sink = MemorySink()
    states = []
    policy = Policy(SimPlatform(service.path),
                    Hooks(str(lab.hooks_dir), hooks_timeout, owner_uid=os.getuid()),
                    Settings(**settings), Log(sink, debug=True), on_state=states.append)
    policy.sink = sink
    policy.states = states
    return policy


# the op matrix: table x policy -> (CHECK ok, what FREEZE suspends, pools synced)
MATRIX = [
    ("ufs_only", "sync", "sync", True, {"/", "/var"}, []),
    ("zfs_only", "sync", "sync", True, set(), ["zroot", "tank"]),
    ("zfs_only", "veto", "sync", False, set(), []),
    ("zfs_only", "ignore", "sync", True, set(), []),
    ("mixed", "sync", "sync", True, {"/"}, ["tank"]),
    ("mixed", "sync", "veto", False, set(), []),
    ("mixed", "veto", "ignore", False, set(), []),
    ("mixed", "ignore", "ignore", True, {"/"}, []),
    ("read_only", "veto", "veto", True, set(), []),
    ("nothing", "veto", "veto", True, set(), []),
    ("two_ufs", "veto", "veto", True, {"/", "/var"}, []),
    ("three_ufs", "sync", "sync", True, {"/", "/var", "/usr/local"}, []),
]


@pytest.mark.parametrize(("table", "zfs", "other", "ok", "frozen", "pools"), MATRIX)
def test_op_matrix(lab, fs_factory, table, zfs, other, ok, frozen, pools):
    service = fs_factory(table)
    policy = make_policy(lab, service, zfs=zfs, other_fs=other)
    assert policy.check().ok is ok
    outcome = policy.freeze()
    assert outcome.ok is ok, outcome.message
    assert service.suspended_paths() == frozen
    synced = [e[1] for e in service.server.events if e[0] == "zpool_sync"]
    assert synced == ([tuple(pools)] if pools else [])
    thaw = policy.thaw()
    assert thaw.ok
    assert service.suspended == frozenset()
    assert not policy.anything_frozen


def test_veto_names_the_filesystem_and_the_option(lab, fs_factory):
    service = fs_factory("mixed")
    policy = make_policy(lab, service, other_fs="veto")
    outcome = policy.check()
    assert not outcome.ok
    assert "/mnt/nfs is writable nfs (--other-fs veto)" in outcome.message
    assert service.server.events == []


def test_excluded_mount_point_is_left_alone(lab, fs_factory):
    service = fs_factory("three_ufs")
    policy = make_policy(lab, service, excludes=("/usr/*",))
    assert policy.freeze().ok
    assert service.suspended_paths() == {"/", "/var"}


def test_exclusion_lifts_a_veto(lab, fs_factory):
    service = fs_factory("mixed")
    policy = make_policy(lab, service, other_fs="veto", excludes=("/mnt/*",))
    assert policy.check().ok
    assert policy.freeze().ok
    assert service.suspended_paths() == {"/"}


def test_two_ufs_mounts_are_each_held_on_their_own_connection(lab, fs_factory, m):
    service = fs_factory("two_ufs")
    policy = make_policy(lab, service)
    assert policy.freeze().ok
    # the service refuses a second suspension on one connection: both held means two
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert len(policy.suspensions) == 2


def test_deepest_mount_is_suspended_first_and_resumed_last(lab, fs_factory, m):
    service = fs_factory("three_ufs")
    policy = make_policy(lab, service)
    policy.freeze()
    policy.thaw()
    order = [event[:2] for event in service.server.events if event[0] != "sync"]
    assert order[:3] == [("suspend", m.LOCAL_UFS.fsid), ("suspend", m.VAR_UFS.fsid),
                         ("suspend", m.ROOT_UFS.fsid)]
    assert order[3:] == [("resume", m.ROOT_UFS.fsid), ("resume", m.VAR_UFS.fsid),
                         ("resume", m.LOCAL_UFS.fsid)]


def test_plan_orders_by_depth_then_latest_mount_first(m):
    plan = make_plan([m.ROOT_UFS, m.VAR_UFS, m.LOCAL_UFS, m.DEVFS], Settings())
    assert [x.mount_on for x in plan.suspend] == ["/usr/local", "/var", "/"]


def test_suspension_failing_on_the_second_of_three_rolls_back_everything(lab, fs_factory, m):
    service = fs_factory("three_ufs")
    lab.write_hook("10-db")
    service.server.fail_next_suspend(m.VAR_UFS.fsid, "EDEADLK")
    policy = make_policy(lab, service)
    outcome = policy.freeze()
    assert not outcome.ok
    assert "suspend /var" in outcome.message and "EDEADLK" in outcome.message
    assert service.suspended == frozenset()
    assert [e[:2] for e in service.server.events if e[0] != "sync"] == [
        ("suspend", m.LOCAL_UFS.fsid), ("resume", m.LOCAL_UFS.fsid)]
    assert lab.journal() == ["10-db freeze", "10-db thaw"]
    assert not policy.anything_frozen


def test_failing_freeze_hook_fails_freeze_and_thaws_the_hooks_that_ran(lab, fs_factory):
    service = fs_factory("ufs_only")
    lab.write_hook("10-first")
    lab.write_hook("20-broken", 'echo "database refused" >&2; [ "$1" = thaw ] || exit 3')
    lab.write_hook("30-never")
    policy = make_policy(lab, service)
    outcome = policy.freeze()
    assert not outcome.ok and "20-broken freeze: exit status 3" in outcome.message
    assert lab.journal() == ["10-first freeze", "20-broken freeze",
                             "20-broken thaw", "10-first thaw"]
    assert service.server.events == []  # no filesystem was touched
    assert "database refused" in policy.sink.text()


def test_hook_hanging_past_its_timeout_is_killed_and_fails_freeze(lab, fs_factory):
    service = fs_factory("ufs_only")
    lab.write_hook("10-hang", '[ "$1" = freeze ] && sleep 30')
    policy = make_policy(lab, service, hooks_timeout=0.5)
    outcome = policy.freeze()
    assert not outcome.ok and "killed after its" in outcome.message
    assert lab.journal() == ["10-hang freeze", "10-hang thaw"]
    assert service.suspended == frozenset()


def test_hooks_freeze_in_lexical_order_and_thaw_in_reverse(lab, fs_factory):
    service = fs_factory("ufs_only")
    for name in ("20-b", "10-a", "30-c"):
        lab.write_hook(name)
    policy = make_policy(lab, service)
    assert policy.freeze().ok
    assert policy.thaw().ok
    assert lab.journal() == ["10-a freeze", "20-b freeze", "30-c freeze",
                             "30-c thaw", "20-b thaw", "10-a thaw"]


def test_world_writable_hook_directory_refuses_every_hook_and_fails_freeze(lab, fs_factory):
    service = fs_factory("ufs_only")
    lab.write_hook("10-a")
    lab.hooks_dir.chmod(0o777)
    policy = make_policy(lab, service)
    assert not policy.check().ok
    outcome = policy.freeze()
    assert not outcome.ok and "writable by group or others" in outcome.message
    assert lab.journal() == [] and service.server.events == []


def test_logs_are_held_while_frozen_and_released_after_thaw(lab, fs_factory):
    service = fs_factory("ufs_only")
    policy = make_policy(lab, service)
    policy.freeze()
    assert policy.sink.records == []
    assert policy.log.holding
    policy.thaw()
    text = policy.sink.text()
    assert "suspended /var" in text and "held while frozen" in text
    assert "modules imported while frozen" not in text


def test_state_is_persisted_before_suspension_and_after_thaw_never_in_between(
        lab, fs_factory):
    service = fs_factory("ufs_only")
    lab.write_hook("10-a")
    policy = make_policy(lab, service)
    seen_suspended = []
    policy.on_state = lambda state: (seen_suspended.append(set(service.suspended)),
                                     policy.states.append(state))
    policy.freeze()
    written_by_freeze = len(policy.states)
    policy.thaw()
    assert all(not s for s in seen_suspended)
    before_suspending = policy.states[written_by_freeze - 1]
    assert before_suspending["filesystems"] == ["/var", "/"] and before_suspending["frozen"]
    assert before_suspending["hooks"] == ["10-a"]
    assert policy.states[-1] == {"frozen": False, "filesystems": [], "hooks": [],
                                 "running": None}


def test_thaw_without_freeze_succeeds_and_says_so(lab, fs_factory):
    policy = make_policy(lab, fs_factory("ufs_only"))
    outcome = policy.thaw()
    assert outcome.ok and outcome.message == "nothing was frozen"


def test_freeze_twice_thaws_the_first_freeze_before_freezing_again(lab, fs_factory, m):
    service = fs_factory("two_ufs")
    lab.write_hook("10-a")
    policy = make_policy(lab, service)
    assert policy.freeze().ok
    assert policy.freeze().ok
    assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
    assert lab.journal() == ["10-a freeze", "10-a thaw", "10-a freeze"]
    policy.thaw()
    assert service.suspended == frozenset()


def test_zpool_sync_failure_fails_freeze_and_thaws_hooks(lab, fs_factory, m):
    service = fs_factory([m.ROOT_UFS, m.TANK])
    lab.write_hook("10-a")
    service.mounts = [m.ROOT_UFS, m.TANK]
    policy = make_policy(lab, service)
    original = service.server._zpool_sync
    service.server._zpool_sync = lambda pools: {"ok": False, "errno": "EIO",
                                                "message": "pool I/O is suspended"}
    outcome = policy.freeze()
    service.server._zpool_sync = original
    assert not outcome.ok and "pool I/O is suspended" in outcome.message
    assert lab.journal() == ["10-a freeze", "10-a thaw"]
    assert service.suspended == frozenset()


@pytest.mark.parametrize(("field", "value"), [("zfs", "maybe"), ("other_fs", "")])
def test_settings_refuse_unknown_policies_naming_the_option(field, value):
    with pytest.raises(ValueError, match=f"{field} policy"):
        Settings(**{field: value})
