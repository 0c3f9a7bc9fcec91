"""The simulator's filesystem service: wire format and reference server semantics."""

from __future__ import annotations

import pytest

from hvbsd.vss import simwire
from hvbsd.vss.mounts import Mount
from hvbsd.vss.platform import PlatformError, SimPlatform


def connect(service) -> simwire.LineSocket:
    return simwire.LineSocket(service.path, 5.0)


def test_mounts_come_back_as_sent(lab, fs_factory, m):
    service = fs_factory("mixed")
    assert SimPlatform(service.path).list_mounts() == m.TABLES["mixed"]


def test_one_connection_holds_one_suspension_like_a_ufssuspend_descriptor(lab, fs_factory, m):
    service = fs_factory("two_ufs")
    first = connect(service)
    assert first.request({"op": "suspend", "fsid": list(m.ROOT_UFS.fsid)}) == {"ok": True}
    second_on_same = first.request({"op": "suspend", "fsid": list(m.VAR_UFS.fsid)})
    assert second_on_same["errno"] == "EBUSY"
    assert service.suspended == {m.ROOT_UFS.fsid}
    first.close()


def test_closing_the_connection_resumes_its_filesystem(lab, fs_factory, m):
    service = fs_factory("ufs_only")
    suspension = connect(service)
    suspension.request({"op": "suspend", "fsid": list(m.VAR_UFS.fsid)})
    assert service.suspended == {m.VAR_UFS.fsid}
    suspension.close()
    connect(service).request({"op": "sync"})  # a round trip: the close was handled
    assert service.suspended == frozenset()
    assert service.changes == [(m.VAR_UFS.fsid, True), (m.VAR_UFS.fsid, False)]


def test_resume_releases_and_a_second_resume_says_ebadf(lab, fs_factory, m):
    service = fs_factory("ufs_only")
    connection = connect(service)
    connection.request({"op": "suspend", "fsid": list(m.ROOT_UFS.fsid)})
    assert connection.request({"op": "resume"}) == {"ok": True}
    assert service.suspended == frozenset()
    assert connection.request({"op": "resume"})["errno"] == "EBADF"


@pytest.mark.parametrize(("fsid", "errno_name"), [
    ([9, 9], "ENOENT"), ([0x71, 0x71], "EINVAL"), ("x", "EINVAL")])
def test_suspend_errors_carry_the_kernels_errno_name(lab, fs_factory, fsid, errno_name):
    service = fs_factory("ufs_only")
    reply = connect(service).request({"op": "suspend", "fsid": fsid})
    assert reply["ok"] is False and reply["errno"] == errno_name


def test_suspending_an_already_suspended_filesystem_is_ebusy(lab, fs_factory, m):
    service = fs_factory("ufs_only")
    holder = connect(service)
    holder.request({"op": "suspend", "fsid": list(m.ROOT_UFS.fsid)})
    reply = connect(service).request({"op": "suspend", "fsid": list(m.ROOT_UFS.fsid)})
    assert reply["errno"] == "EBUSY"


def test_injected_fault_fails_once_then_suspension_works(lab, fs_factory, m):
    service = fs_factory("ufs_only")
    service.server.fail_next_suspend(m.VAR_UFS.fsid, "EDEADLK")
    platform = SimPlatform(service.path)
    with pytest.raises(PlatformError) as caught:
        platform.suspend(m.VAR_UFS)
    assert caught.value.errno_name == "EDEADLK"
    platform.suspend(m.VAR_UFS).resume()
    assert [e[0] for e in service.server.events] == ["suspend", "resume"]


def test_zpool_sync_knows_the_pools_of_the_zfs_mounts(lab, fs_factory):
    service = fs_factory("zfs_only")
    platform = SimPlatform(service.path)
    platform.zpool_sync(["zroot", "tank"])
    with pytest.raises(PlatformError, match="'nope': no such pool"):
        platform.zpool_sync(["nope"])
    assert ("zpool_sync", ("zroot", "tank")) in service.server.events


def test_malformed_requests_get_einval_and_the_connection_keeps_working(lab, fs_factory):
    service = fs_factory("ufs_only")
    connection = connect(service)
    connection._sock.sendall(b"not json\n")
    reply = simwire.decode_line(connection._sock.recv(4096).split(b"\n")[0])
    assert reply["errno"] == "EINVAL" and "not a JSON line" in reply["message"]
    assert connection.request({"op": "bogus"})["errno"] == "EINVAL"
    assert connection.request({"op": "sync"}) == {"ok": True}


@pytest.mark.parametrize(("entry", "complaint"), [
    ({"fsid": [1], "fstype": "ufs", "mount_on": "/", "mount_from": "d", "read_only": False},
     "fsid must be two integers"),
    ({"fsid": [1, 2], "fstype": 3, "mount_on": "/", "mount_from": "d", "read_only": False},
     "fstype must be a string"),
    ({"fsid": [1, 2], "fstype": "ufs", "mount_on": "/", "mount_from": "d", "read_only": 1},
     "read_only must be true or false"),
    ({"fsid": [1, 2], "fstype": "ufs", "mount_on": "var", "mount_from": "d",
      "read_only": False}, "not an absolute path"),
    ({"fsid": [1, 2**31], "fstype": "ufs", "mount_on": "/", "mount_from": "d",
      "read_only": False}, "not two int32"),
])
def test_bad_mount_entries_are_refused_naming_the_field(entry, complaint):
    with pytest.raises(simwire.WireError, match=complaint):
        simwire.mount_from_wire(entry)


def test_mount_entry_round_trips_through_the_wire():
    mount = Mount((-1, 7), "msdosfs", "/boot/efi", "/dev/gpt/efi", read_only=True)
    assert simwire.mount_from_wire(simwire.mount_to_wire(mount)) == mount


def test_unreachable_service_is_a_platform_error_naming_the_path(lab):
    with pytest.raises(PlatformError, match=lab.fs_path):
        SimPlatform(lab.fs_path, timeout=1).list_mounts()
