"""Simulated guests: bad input and faults, each with one clear message and exit status."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvbsd import releases
from hvbsd.sim import namespace
from hvbsd.sim.guest import (
    Guest,
    GuestExists,
    GuestNotRunning,
    HolderDied,
    InvalidInput,
    NamespacesUnavailable,
    UnknownGuest,
)

pytestmark = pytest.mark.slow


def hvbsd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hvbsd", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )


def test_unknown_guest_is_reported_by_every_verb(hvbsd_env, sim_root):
    for verb, status in (("start", 1), ("stop", 1), ("destroy", 1), ("exec", 125)):
        extra = ["--", "true"] if verb == "exec" else []
        result = hvbsd("sim", "guest", verb, "nosuch", *extra, env=hvbsd_env)
        assert result.returncode == status, (verb, result.stderr)
        assert result.stderr == (
            f"hvbsd sim guest {verb}: guest 'nosuch': no such guest in {sim_root}\n"
        )
    with pytest.raises(UnknownGuest):
        Guest("nosuch", sim_root).exec(["true"])


def test_second_create_of_a_name_fails_and_keeps_the_first(sim_guest, hvbsd_env, sim_root):
    result = hvbsd("sim", "guest", "create", "g1", env=hvbsd_env)
    assert result.returncode == 1
    assert result.stderr == f"hvbsd sim guest create: guest 'g1' already exists in {sim_root}\n"
    with pytest.raises(GuestExists):
        Guest.create("g1", sim_root)
    assert sim_guest.exec(["true"]).returncode == 0


def test_commands_for_a_stopped_guest_fail_with_how_to_start_it(sim_guest, hvbsd_env):
    sim_guest.stop()
    result = hvbsd("sim", "guest", "exec", "g1", "--", "true", env=hvbsd_env)
    assert result.returncode == 125
    assert result.stderr == (
        "hvbsd sim guest exec: guest 'g1' is stopped: start it with 'hvbsd sim guest start g1'\n"
    )
    again = hvbsd("sim", "guest", "stop", "g1", env=hvbsd_env)
    assert (again.returncode, again.stderr) == (
        1, "hvbsd sim guest stop: guest 'g1' is already stopped\n"
    )
    with pytest.raises(GuestNotRunning):
        sim_guest.exec(["true"])


def test_start_of_a_running_guest_is_refused(sim_guest, hvbsd_env):
    result = hvbsd("sim", "guest", "start", "g1", env=hvbsd_env)
    assert result.returncode == 1
    assert f"guest 'g1' is already running (pid {sim_guest.pid})" in result.stderr


def test_dead_holder_is_detected_reported_and_cleaned_by_destroy(sim_guest, hvbsd_env, sim_root):
    holder = sim_guest.pid
    pid_ns = namespace.pid_namespace_of(holder)
    os.kill(holder, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while namespace.process_starttime(holder) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim_guest.status == "dead"

    listing = hvbsd("sim", "guest", "list", env=hvbsd_env)
    assert listing.stdout.splitlines()[1].split()[:3] == ["g1", "dead", "-"]
    result = hvbsd("sim", "guest", "exec", "g1", "--", "true", env=hvbsd_env)
    assert result.returncode == 125
    assert result.stderr == (
        f"hvbsd sim guest exec: guest 'g1': its holder process (pid {holder}) has died; "
        "'hvbsd sim guest destroy g1' cleans it up\n"
    )
    with pytest.raises(HolderDied):
        sim_guest.exec(["true"])

    destroyed = hvbsd("sim", "guest", "destroy", "g1", env=hvbsd_env)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not (sim_root / "g1").exists()
    assert namespace.processes_in_namespace(pid_ns) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "1bad"], "guest name '1bad': must start with a letter"),
        (["create", "a/b"], "guest name 'a/b': must start with a letter"),
        (["create", "ok", "--nics", "9"], "nics 9: must be an integer from 0 to 8"),
        (["exec", "g1"], "exec: no command given"),
    ],
)
def test_bad_input_names_the_input_and_exits_2(hvbsd_env, sim_root, args, message):
    result = hvbsd("sim", "guest", *args, env=hvbsd_env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert [p.name for p in sim_root.iterdir() if p.name != ".lock"] == []


@pytest.mark.parametrize("release", ["14.3", "13.4", "15", "15.1-RELEASE", "", "$(reboot)",
                                     "15.1\nx", "9" * 200])
def test_unsupported_release_is_one_line_exit_2_and_leaves_nothing(hvbsd_env, sim_root,
                                                                     release):
    result = hvbsd("sim", "guest", "create", "g1", "--release", release, env=hvbsd_env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("hvbsd sim guest create: release ")
    assert result.stderr.rstrip().endswith(
        "hvbsd supports FreeBSD " + ", ".join(releases.names()))
    assert "Traceback" not in result.stderr
    assert [p.name for p in sim_root.iterdir() if p.name != ".lock"] == []


def test_unsupported_release_is_refused_by_the_python_api(sim_root):
    with pytest.raises(InvalidInput, match=r"release '14\.3': hvbsd supports FreeBSD"):
        Guest.create("g1", sim_root, release="14.3")
    with pytest.raises(InvalidInput, match=r"release 15\.1: hvbsd supports"):
        Guest.create("g1", sim_root, release=15.1)  # a number is no release name
    assert not (sim_root / "g1").exists()


def test_bad_preset_is_refused_by_the_python_api(sim_root):
    with pytest.raises(InvalidInput, match="preset 'ext4': must be one of ufs, zfs, mixed"):
        Guest.create("g1", sim_root, preset="ext4")


def test_state_directory_overlayfs_cannot_carry_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="must not contain ','"):
        Guest("g1", tmp_path / "a,b")


def test_every_verb_fails_with_one_message_naming_vagrant_without_namespaces(hvbsd_env):
    # A user namespace whose own limit forbids nested user namespaces: the
    # kernel refuses unshare(CLONE_NEWUSER) exactly as a locked-down host does.
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) not installed")
    for argv in (["list"], ["create", "g1"], ["exec", "g1", "--", "true"], ["destroy", "g1"]):
        command = [sys.executable, "-m", "hvbsd", "sim", "guest", *argv]
        script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
        result = subprocess.run(
            [unshare, "--user", "--map-root-user", "sh", "-c", script, "sh", *command],
            env=hvbsd_env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 69, (argv, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert "cannot create user namespaces" in lines[0]
        assert "use the vagrant provider instead" in lines[0]


def test_forced_probe_failure_raises_namespaces_unavailable(monkeypatch, sim_root):
    monkeypatch.setenv(namespace.FORCE_UNAVAILABLE_ENV, "1")
    with pytest.raises(NamespacesUnavailable, match="vagrant provider"):
        Guest.create("g1", sim_root)


def _unprivileged_python() -> str | None:
    for candidate in ("/usr/bin/python3", sys.executable):
        probe = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", candidate, "-c",
             "import sys; assert sys.version_info >= (3, 9)"],
            capture_output=True, timeout=30,
        )
        if probe.returncode == 0:
            return candidate
    return None


def _sources_nobody_can_import(tmp_path: Path) -> Path:
    """A copy of the hvbsd package under ``tmp_path``, readable by any user.

    The checkout may sit under a 0700 directory (``mktemp -d``, a private
    home); nobody could not import it there, so the test gives it a copy.
    """
    import hvbsd

    os.chmod(tmp_path, 0o755)
    for parent in tmp_path.parents:
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    source = tmp_path / "src"
    package = Path(hvbsd.__file__).resolve().parent
    shutil.copytree(package, source / "hvbsd", ignore=shutil.ignore_patterns("__pycache__"))
    # the data files the package finds beside its checkout (releases.yml: Guest.create reads it)
    from hvbsd.locate import data_path

    for name in ("releases.yml", "galaxy.yml", "templates/manifest.yml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_path(name), tmp_path / name)
    return source


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_works_for_an_ordinary_user_through_user_namespaces(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) not installed")
    python = _unprivileged_python()
    if python is None:
        pytest.skip("no Python this machine lets an ordinary user run")
    nobody = pwd.getpwnam("nobody")
    source = _sources_nobody_can_import(tmp_path)
    root = tmp_path / "nobody-sim"
    root.mkdir()
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    script = (
        "import sys\n"
        "from hvbsd.sim.guest import Guest\n"
        f"g = Guest.create('u1', {str(root)!r})\n"
        "r = g.exec(['sh', '-c', 'id -u; echo x > /etc/owned; cat /etc/owned'], text=True)\n"
        "print(r.stdout, r.stderr, end='')\n"
        "g.destroy()\n"
    )
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(source), "HOME": "/"}
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", script],
        env=env, capture_output=True, text=True, timeout=120, cwd="/",
    )
    if "cannot create user namespaces" in result.stderr:
        pytest.skip("this kernel does not give ordinary users user namespaces")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "x"]
    assert not os.path.exists("/etc/owned")
    assert list(root.iterdir()) == [root / ".lock"]
