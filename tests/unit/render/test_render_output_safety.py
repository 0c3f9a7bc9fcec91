"""`hvbsd render` writes only below --out, only regular files, and all or nothing.

Everything below --out is treated as hostile: symbolic links, FIFOs, devices,
huge files and the leftovers of a killed render are planted there, and each
test asserts what the user sees (exit status, message) and what is on disk
afterwards (the victim untouched, nothing outside --out, no temporary files).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvbsd.render import cli
from hvbsd.render import output as render_output
from hvbsd.render.output import Refused, check_host_name, write_hosts

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "examples/azure-lagg.yml")
TRANSPARENT = str(ROOT / "examples/transparent.yml")
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

# `hvbsd render` alone, without the other parts of the hvbsd command
RUNNER = """
import argparse, sys
from hvbsd.render import cli
parser = argparse.ArgumentParser(prog="hvbsd")
cli.register(parser.add_subparsers())
args = parser.parse_args(["render", *sys.argv[1:]])
sys.exit(args.func(args))
"""


def render(*args: str, cwd: Path = ROOT, timeout: float = 300,
           ) -> subprocess.CompletedProcess[str]:
    """The real `hvbsd render` in its own process (the timeout only guards a hang)."""
    return subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, check=False, timeout=timeout)


def render_here(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`hvbsd render` in this process, for fakes at the os boundary."""
    parser = argparse.ArgumentParser(prog="hvbsd")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["render", *argv])
    status = args.func(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def snapshot(top: Path) -> dict[str, object]:
    """Everything below top without following links: type, mode, bytes, link target."""
    found: dict[str, object] = {}
    if not os.path.lexists(top):
        return found
    for directory, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            path = Path(directory, name)
            info = path.lstat()
            relative = path.relative_to(top).as_posix()
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                found[relative] = ("file", stat.S_IMODE(info.st_mode),
                                   path.read_bytes() if info.st_size < 1 << 20
                                   else info.st_size)
            else:
                found[relative] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))
    return found


def staging_left(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".")) \
        if out.is_dir() else []


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside --out that render must never change."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "rc.conf").write_text("precious\n")
    (victim / "rc.conf.d").mkdir()
    return victim


def _inventory(path: Path, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


# --- --out ------------------------------------------------------------------


def test_an_empty_out_is_refused_and_nothing_is_written_in_the_cwd(tmp_path):
    result = render("--vars", EXAMPLE, "--out", "", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--out is empty: name the output directory" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_empty_out_is_refused_by_the_writer_itself(tmp_path):
    with pytest.raises(Refused, match="--out is empty"):
        write_hosts("", {"": {"etc/rc.conf": (b"x\n", 0o644)}})
    with pytest.raises(Refused, match="--out is empty"):
        render_output.diff_hosts("", {"": {"etc/rc.conf": (b"x\n", 0o644)}})


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_an_out_that_is_not_a_directory_is_refused(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("mine\n")
    else:
        os.mkfifo(out)
    for extra in ([], ["--check"]):
        result = render("--vars", EXAMPLE, "--out", str(out), *extra)
        assert result.returncode == 2, result.stderr
        assert f"{out}: not a directory" in result.stderr
    if kind == "file":
        assert out.read_text() == "mine\n"
    else:
        assert stat.S_ISFIFO(out.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- symbolic links and special files below --out --------------------------


def test_a_symlinked_directory_below_out_is_refused_and_the_victim_untouched(
        tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    (out / "etc").symlink_to(victim)
    before, outside = snapshot(out), snapshot(victim)
    for extra in ([], ["--check"]):
        result = render("--vars", EXAMPLE, "--out", str(out), *extra)
        assert result.returncode == 2, result.stderr
        assert f"{out}/etc: is a symbolic link, not a directory" in result.stderr
    assert "nothing written" in render("--vars", EXAMPLE, "--out", str(out)).stderr
    assert snapshot(out) == before, "nothing below --out may change"
    assert snapshot(victim) == outside


@pytest.mark.parametrize("where", ["host", "etc"])
def test_a_symlink_in_an_inventory_hosts_tree_is_refused(tmp_path, victim, where):
    inventory = _inventory(tmp_path / "inventory.yml",
                           {"web1": {"hyperv_guest_mode": "lagg"}})
    out = tmp_path / "out"
    assert render("-i", str(inventory), "--out", str(out)).returncode == 0
    link = out / "web1" if where == "host" else out / "web1/etc"
    shutil.rmtree(link)
    link.symlink_to(victim)
    before, outside = snapshot(out), snapshot(victim)
    result = render("-i", str(inventory), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert f"{link}: is a symbolic link" in result.stderr
    assert snapshot(out) == before and snapshot(victim) == outside


def test_an_existing_file_that_links_to_dev_zero_is_refused_not_read(tmp_path):
    out = tmp_path / "out"
    assert render("--vars", EXAMPLE, "--out", str(out)).returncode == 0
    rc_conf = out / "etc/rc.conf"
    rc_conf.unlink()
    rc_conf.symlink_to("/dev/zero")
    for extra in ([], ["--check"]):
        result = render("--vars", EXAMPLE, "--out", str(out), *extra)
        assert result.returncode == 2, result.stderr
        assert f"{rc_conf}: is a symbolic link, not a regular file" in result.stderr
    assert os.readlink(rc_conf) == "/dev/zero"
    assert staging_left(out) == []


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_a_special_file_where_render_writes_is_refused_without_hanging(tmp_path, kind):
    out = tmp_path / "out"
    assert render("--vars", EXAMPLE, "--out", str(out)).returncode == 0
    rc_conf = out / "etc/rc.conf"
    rc_conf.unlink()
    if kind == "fifo":
        os.mkfifo(rc_conf)
    elif kind == "socket":
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(rc_conf))
        sock.close()
    else:
        try:
            os.mknod(rc_conf, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
        except PermissionError:
            pytest.skip("making a device node needs root")
    before = snapshot(out)
    what = {"fifo": "a FIFO", "socket": "a socket", "device": "a device"}[kind]
    for extra in ([], ["--check"]):
        result = render("--vars", EXAMPLE, "--out", str(out), *extra, timeout=120)
        assert result.returncode == 2, result.stderr
        assert f"{rc_conf}: is {what}, not a regular file" in result.stderr
    assert snapshot(out) == before


def test_a_huge_existing_file_is_replaced_and_check_does_not_read_it(tmp_path):
    out = tmp_path / "out"
    assert render("--vars", EXAMPLE, "--out", str(out)).returncode == 0
    rc_conf = out / "etc/rc.conf"
    wanted = rc_conf.read_bytes()
    with open(rc_conf, "r+b") as stream:  # 64 GiB, sparse: reading it would never end
        stream.truncate(64 << 30)
    check = render("--vars", EXAMPLE, "--out", str(out), "--check")
    assert check.returncode == 1, check.stderr
    assert (f"differs etc/rc.conf: {64 << 30} bytes, larger than the 1048576 render "
            "reads; not shown") in check.stdout
    result = render("--vars", EXAMPLE, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert rc_conf.read_bytes() == wanted


def test_a_directory_where_a_file_belongs_is_refused(tmp_path):
    out = tmp_path / "out"
    (out / "etc/rc.conf").mkdir(parents=True)
    before = snapshot(out)
    result = render("--vars", EXAMPLE, "--out", str(out))
    assert result.returncode == 2
    assert f"{out}/etc/rc.conf: is a directory, not a regular file" in result.stderr
    assert snapshot(out) == before


def test_a_link_swapped_in_after_the_checks_is_still_not_followed(
        tmp_path, victim, monkeypatch, capsys):
    """No check-then-use race: the writer opens every directory again with O_NOFOLLOW."""
    out = tmp_path / "out"
    assert render_here(["--vars", EXAMPLE, "--out", str(out)], capsys)[0] == 0
    real_plan = render_output._plan

    def plan_then_swap(out_fd, shown, hosts):
        plan = real_plan(out_fd, shown, hosts)
        shutil.rmtree(out / "etc")
        (out / "etc").symlink_to(victim)
        return plan

    monkeypatch.setattr(render_output, "_plan", plan_then_swap)
    outside = snapshot(victim)
    status, _, err = render_here(["--vars", TRANSPARENT, "--out", str(out)], capsys)
    assert status == 2, err
    assert f"{out}/etc: is a symbolic link, not a directory" in err
    assert snapshot(victim) == outside
    assert staging_left(out) == []


# --- host names -------------------------------------------------------------


@pytest.mark.parametrize("host", ["../escaped", "/tmp/abs", "/", ".", "..", "", "a/b",
                                  ".hvbsd-stage.00000000", "web\n1", "x" * 256])
def test_the_writer_refuses_a_host_name_that_is_not_one_plain_component(tmp_path, host):
    out = tmp_path / "fleet" / "out"
    tree = {"etc/rc.conf": (b"x=1\n", 0o644)}
    with pytest.raises(Refused, match="a host's directory below --out must be one plain"):
        write_hosts(str(out), {host: tree, "good": tree})
    assert snapshot(tmp_path) == {}, "nothing may be created, not even --out"


@pytest.mark.parametrize("host", ["../escaped", "/tmp/abs-hvbsd-test"])
def test_an_inventory_host_named_like_a_path_writes_nothing_anywhere(tmp_path, host):
    inventory = _inventory(tmp_path / "inventory.yml",
                           {"good": {"hyperv_guest_mode": "lagg"}, host: {}})
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    result = render("-i", str(inventory), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before
    assert not os.path.lexists("/tmp/abs-hvbsd-test")


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_host_name_is_written_as_one_directory_below_out_or_refused(host):
    with tempfile.TemporaryDirectory() as scratch:
        top = Path(scratch)
        out = top / "out"
        try:
            write_hosts(str(out), {host: {"etc/rc.conf": (b"x=1\n", 0o644)}})
        except Refused:
            assert list(top.iterdir()) == []
            return
        assert [p.name for p in top.iterdir()] == ["out"]
        assert [p.name for p in out.iterdir()] == [host]
        assert (out / host / "etc/rc.conf").read_bytes() == b"x=1\n"


def test_check_host_name_accepts_ansible_host_names():
    for host in ("web1", "db-1.example.com", "10.0.0.5", "host_a", "2001:db8::1"):
        check_host_name(host)


# --- arbitrary states of what is below --out --------------------------------

TREE = {"etc/rc.conf": (b"# BEGIN\nx=1\n# END\n", 0o644),
        "etc/rc.conf.d/hvbsd_vssd": (b"hvbsd_vssd_enable=YES\n", 0o644),
        "usr/local/libexec/hvbsd/hyperv_vfup": (b"#!/bin/sh\n", 0o755)}

STATES = st.one_of(
    st.just(("missing",)),
    st.tuples(st.just("file"), st.binary(max_size=64), st.sampled_from([0o600, 0o644, 0o755])),
    st.just(("link-file",)), st.just(("link-dir",)), st.just(("dangling",)),
    st.just(("fifo",)), st.just(("dir",)),
)
PLACES = st.sampled_from(["etc", "etc/rc.conf", "etc/rc.conf.d", "usr/local",
                          "usr/local/libexec/hvbsd/hyperv_vfup", "etc/.rc.conf.abcd1234",
                          ".hvbsd-stage.0badf00d", ".hvbsd-stage.0badf00d/new/x"])


def _plant(out: Path, victim: Path, place: str, state: tuple) -> None:
    path = out / place
    if os.path.lexists(path) or not path.parent.is_dir() or path.parent.is_symlink():
        return
    kind = state[0]
    if kind == "file":
        path.write_bytes(state[1])
        os.chmod(path, state[2])
    elif kind == "link-file":
        path.symlink_to(victim / "rc.conf")
    elif kind == "link-dir":
        path.symlink_to(victim)
    elif kind == "dangling":
        path.symlink_to(victim / "nothing-here")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()


@given(st.lists(st.tuples(PLACES, STATES), max_size=4), st.booleans())
@settings(max_examples=150, deadline=None)
def test_whatever_is_planted_below_out_render_writes_the_tree_or_changes_nothing(
        planted, inventory):
    with tempfile.TemporaryDirectory() as scratch:
        top = Path(scratch)
        victim = top / "victim"
        victim.mkdir()
        (victim / "rc.conf").write_text("precious\n")
        out = top / "out"
        root = out / "h1" if inventory else out
        root.mkdir(parents=True)
        for parent in ("etc", "usr"):
            (root / parent).mkdir()
        for place, state in planted:
            if place.startswith(".hvbsd-stage."):
                (out / ".hvbsd-stage.0badf00d/new").mkdir(parents=True, exist_ok=True)
                _plant(out, victim, place, state)
            else:
                _plant(root, victim, place, state)
        before, outside = snapshot(out), snapshot(victim)
        host = "h1" if inventory else ""
        try:
            diff = render_output.diff_hosts(str(out), {host: TREE})
            write_hosts(str(out), {host: TREE})
        except Refused:
            assert snapshot(out) == before, "a refused render changes nothing"
        else:
            got = snapshot(root)
            for relative, (content, mode) in TREE.items():
                assert got[relative] == ("file", mode, content)
            if inventory:
                assert not [p for p, kind in got.items() if kind[0] == "link"]
            assert staging_left(out) == []
            assert not [p for p in got if ".rc.conf.abcd1234" in p]
            assert render_output.diff_hosts(str(out), {host: TREE}) == []
            if snapshot(out) != before:
                assert diff, "--check said nothing would change"
        assert snapshot(victim) == outside


# --- leftovers of an interrupted render -------------------------------------


def test_stray_temporary_files_and_stages_are_reported_by_check_and_removed(tmp_path):
    out = tmp_path / "out"
    assert render("--vars", EXAMPLE, "--out", str(out)).returncode == 0
    (out / "etc/.rc.conf.k2j3h4l5").write_text("half a file")
    stage = out / ".hvbsd-stage.1a2b3c4d/new/web1/etc"
    stage.mkdir(parents=True)
    (stage / "rc.conf").write_text("half a host")
    check = render("--vars", EXAMPLE, "--out", str(out), "--check")
    assert check.returncode == 1, check.stderr
    assert ("stray .hvbsd-stage.1a2b3c4d: left by an interrupted hvbsd render "
            "(render removes it)") in check.stdout
    assert ("stray etc/.rc.conf.k2j3h4l5: a temporary file left by an interrupted hvbsd "
            "render (render removes it)") in check.stdout
    result = render("--vars", EXAMPLE, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert staging_left(out) == [] and not (out / "etc/.rc.conf.k2j3h4l5").exists()
    assert render("--vars", EXAMPLE, "--out", str(out), "--check").returncode == 0


def test_files_an_inventory_host_no_longer_has_are_reported_and_removed(tmp_path):
    inventory = tmp_path / "inventory.yml"
    _inventory(inventory, {"web1": {"hyperv_guest_mode": "lagg"}})
    out = tmp_path / "out"
    assert render("-i", str(inventory), "--out", str(out)).returncode == 0
    (out / "web1/etc/.rc.conf.abcdefgh").write_text("half")
    (out / "web1/notes").write_text("mine")
    _inventory(inventory, {"web1": {"hyperv_guest_mode": "transparent"}})
    check = render("-i", str(inventory), "--out", str(out), "--check")
    assert check.returncode == 1, check.stderr
    assert ("extra web1/usr/local/libexec: a directory render did not make for this "
            "host (render removes it)") in check.stdout
    assert "extra web1/notes: a file" in check.stdout
    assert "stray web1/etc/.rc.conf.abcdefgh: a temporary file" in check.stdout
    assert render("-i", str(inventory), "--out", str(out)).returncode == 0
    assert not (out / "web1/usr/local/libexec").exists()
    assert not (out / "web1/notes").exists()
    assert render("-i", str(inventory), "--out", str(out), "--check").stdout == ""


def test_a_render_that_changes_nothing_touches_nothing(tmp_path):
    inventory = _inventory(tmp_path / "inventory.yml", {"web1": {}, "web2": {}})
    out = tmp_path / "out"
    assert render("-i", str(inventory), "--out", str(out)).returncode == 0
    inodes = {p: p.stat().st_ino for p in out.rglob("*")}
    assert render("-i", str(inventory), "--out", str(out)).returncode == 0
    assert {p: p.stat().st_ino for p in out.rglob("*")} == inodes


# A render killed with SIGKILL at the n-th change it makes to the disk: the
# counter wraps the os calls of hvbsd.render.output only.
KILLER = """
import argparse, os, signal, sys, types
from hvbsd.render import cli, output
kill_at, seen = int(sys.argv[1]), [0]
def counted(real):
    def call(*args, **kwargs):
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call
proxy = types.ModuleType("os")
proxy.__dict__.update(os.__dict__)
for name in ("write", "rename", "replace", "mkdir", "unlink", "rmdir", "fchmod"):
    setattr(proxy, name, counted(getattr(os, name)))
output.os = proxy
parser = argparse.ArgumentParser(prog="hvbsd")
cli.register(parser.add_subparsers())
args = parser.parse_args(["render", *sys.argv[2:]])
status = args.func(args)
print("CHANGES", seen[0], file=sys.stderr)
sys.exit(status)
"""


def _killed_render(kill_at: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", KILLER, str(kill_at), *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, check=False, timeout=300)


def test_a_render_killed_at_any_point_leaves_each_host_complete_or_absent(tmp_path):
    old_hosts = {f"h{n}": {"hyperv_guest_mode": "lagg", "hyperv_guest_vf_delay": 120}
                 for n in range(4)}
    new_hosts = {f"h{n}": {"hyperv_guest_mode": "transparent" if n % 2 else "lagg",
                           "hyperv_guest_vf_delay": 30} for n in range(4)}
    old_inventory = _inventory(tmp_path / "old.yml", old_hosts)
    new_inventory = _inventory(tmp_path / "new.yml", new_hosts)
    old_ref, new_ref = tmp_path / "old-ref", tmp_path / "new-ref"
    assert render("-i", str(old_inventory), "--out", str(old_ref)).returncode == 0
    assert render("-i", str(new_inventory), "--out", str(new_ref)).returncode == 0
    full = _killed_render(0, "-i", str(new_inventory), "--out", str(tmp_path / "count"))
    changes = int(full.stderr.split("CHANGES")[1])
    assert changes > 40, full.stderr
    for kill_at in sorted({1, 2, changes // 3, changes // 2, changes - 8, changes - 2,
                           changes}):
        out = tmp_path / f"out{kill_at}"
        shutil.copytree(old_ref, out, symlinks=True)
        killed = _killed_render(kill_at, "-i", str(new_inventory), "--out", str(out))
        assert killed.returncode == -9, killed.stderr
        for host in old_hosts:
            assert snapshot(out / host) in ({}, snapshot(old_ref / host),
                                            snapshot(new_ref / host)), (kill_at, host)
        leftovers = staging_left(out)
        check = render("-i", str(new_inventory), "--out", str(out), "--check")
        for name in leftovers:
            assert f"stray {name}: left by an interrupted hvbsd render" in check.stdout
        again = render("-i", str(new_inventory), "--out", str(out))
        assert again.returncode == 0, again.stderr
        assert snapshot(out) == snapshot(new_ref), kill_at


def test_a_single_host_render_killed_while_renaming_is_repaired_by_the_next(tmp_path):
    out, new_ref, count = tmp_path / "out", tmp_path / "new-ref", tmp_path / "count"
    assert render("--vars", EXAMPLE, "--out", str(out)).returncode == 0
    shutil.copytree(out, count)
    assert render("--vars", TRANSPARENT, "--out", str(new_ref)).returncode == 0
    full = _killed_render(0, "--vars", TRANSPARENT, "--out", str(count))
    changes = int(full.stderr.split("CHANGES")[1])
    killed = _killed_render(changes - 3, "--vars", TRANSPARENT, "--out", str(out))
    assert killed.returncode == -9, killed.stderr
    assert staging_left(out), "the kill was meant to leave the staging directory"
    check = render("--vars", TRANSPARENT, "--out", str(out), "--check")
    assert check.returncode == 1 and "stray .hvbsd-stage." in check.stdout
    assert render("--vars", TRANSPARENT, "--out", str(out)).returncode == 0
    assert staging_left(out) == []
    got = snapshot(out)
    for relative, entry in snapshot(new_ref).items():
        assert got[relative] == entry
    assert render("--vars", TRANSPARENT, "--out", str(out), "--check").returncode == 0


# --- failures to write ------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS,
                                  errno.EIO])
@pytest.mark.parametrize("inventory", [False, True])
def test_a_failure_to_write_is_exit_3_and_leaves_the_old_tree(
        tmp_path, monkeypatch, capsys, code, inventory):
    hosts_file = _inventory(tmp_path / "inventory.yml", {"web1": {}, "web2": {}})
    source = ["-i", str(hosts_file)] if inventory else ["--vars", EXAMPLE]
    out = tmp_path / "out"
    assert render_here([*source, "--out", str(out)], capsys)[0] == 0
    before = snapshot(out)
    if inventory:
        _inventory(hosts_file, {"web1": {"hyperv_guest_mode": "lagg"},
                                "web2": {"hyperv_guest_mode": "lagg"}})
    else:
        source = ["--vars", TRANSPARENT]
    real_write, writes = os.write, []

    def failing_write(fd, data):
        writes.append(fd)
        if len(writes) == 3:
            raise OSError(code, os.strerror(code))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    status, _, err = render_here([*source, "--out", str(out)], capsys)
    monkeypatch.undo()
    assert status == 3, err
    assert f"cannot write: {os.strerror(code)}" in err
    assert f"hvbsd render: nothing changed in {out}" in err
    assert snapshot(out) == before


def test_a_failure_to_write_a_new_out_leaves_no_directory(tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "out"

    def failing_write(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", failing_write)
    status, _, err = render_here(["--vars", EXAMPLE, "--out", str(out)], capsys)
    monkeypatch.undo()
    assert status == 3 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> object:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(path)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the os.write fake covers the same path)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_filesystem_is_exit_3_and_leaves_every_host_as_it_was(tmp_path):
    inventory = _inventory(tmp_path / "inventory.yml", {f"h{n}": {} for n in range(3)})
    with _tmpfs(tmp_path / "small", "1m") as small:
        out = small / "out"
        assert render("-i", str(inventory), "--out", str(out)).returncode == 0
        before = snapshot(out)
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as stream, contextlib.suppress(OSError):
            while True:
                stream.write(b"\0" * 4096)
        _inventory(inventory, {f"h{n}": {"hyperv_guest_mode": "lagg"} for n in range(3)})
        result = render("-i", str(inventory), "--out", str(out))
        assert result.returncode == 3, result.stderr
        assert "No space left on device" in result.stderr
        assert f"nothing changed in {out}" in result.stderr
        assert snapshot(out) == before and staging_left(out) == []
        filler.unlink()
        assert render("-i", str(inventory), "--out", str(out)).returncode == 0


def test_a_read_only_filesystem_is_exit_3(tmp_path):
    with _tmpfs(tmp_path / "ro", "1m") as mount:
        out = mount / "out"
        assert render("--vars", EXAMPLE, "--out", str(out)).returncode == 0
        before = snapshot(out)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        result = render("--vars", TRANSPARENT, "--out", str(out))
        assert result.returncode == 3, result.stderr
        assert "Read-only file system" in result.stderr
        assert snapshot(out) == before


def test_a_second_render_while_one_writes_is_exit_3(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = render("--vars", EXAMPLE, "--out", str(out))
        assert result.returncode == 3, result.stderr
        assert "another hvbsd render is writing here" in result.stderr
        assert list(out.iterdir()) == []
    finally:
        os.close(holder)


def test_the_exit_statuses_are_in_the_help():
    result = render("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "exit status:" in text
    assert "1 --check only: DIR differs" in text
    assert "2 bad input, nothing written" in text
    assert "3 DIR could not be read or written (no space, read-only, permission" in text
