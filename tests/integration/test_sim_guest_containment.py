"""A simulated guest writes nowhere on the host outside its own state directory.

From inside a guest, root tries to create a file and a directory in every
top-level host directory and in every host path the simulator binds into the
guest (the checkout, site-packages, the interpreter's prefix, $HOME, ...);
each attempt is refused or lands in the guest's state directory, and the host
sees nothing new.  The same as an ordinary user, through user namespaces.
Root inside cannot undo the read-only mounts either.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import site
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import hvbsd
from hvbsd.sim import namespace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

# For each directory named on stdin: try a file and a directory, say what happened.
SWEEP = r"""
probe=$1
while IFS= read -r d; do
    if (: > "$d/$probe") 2>/dev/null; then echo "wrote $d"; else echo "refused $d"; fi
    if mkdir "$d/$probe.d" 2>/dev/null; then echo "made $d"; fi
done
"""


def simulator_paths(spec: dict) -> list[str]:
    """Host paths the simulator makes part of the guest, besides the top-level ones."""
    paths = {
        str(REPO),
        str(REPO / "src"),
        os.path.dirname(os.path.dirname(os.path.realpath(hvbsd.__file__))),
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
        str(Path.home()),
        *site.getsitepackages(),
        *spec.get("read_only_binds", []),
    }
    return sorted(p for p in paths if os.path.isdir(p))


def host_targets(spec: dict, extra: tuple[str, ...] = ()) -> list[str]:
    tops = [f"/{name}" for name in sorted(os.listdir("/")) if os.path.isdir(f"/{name}")]
    return sorted({"/", *tops, *simulator_paths(spec), *extra})


def outcomes(report: str) -> dict[str, str]:
    """{directory: "wrote" or "refused"} from the sweep's output."""
    return dict(line.split(" ", 1)[::-1] for line in report.splitlines()
                if line.startswith(("wrote ", "refused ")))


def assert_contained(targets: list[str], report: str, probe: str, found: list[str],
                     state_dir: Path) -> None:
    outcome = outcomes(report)
    # Every target was tried.
    assert set(outcome) == set(targets), report
    for target in targets:
        for name in (probe, probe + ".d"):
            assert not os.path.lexists(os.path.join(target, name)), (
                f"{target}/{name} appeared on the host"
            )
    written = [t for t, what in outcome.items() if what == "wrote"]
    # What the guest could write, it wrote into its state directory.
    assert len(found) >= len(written), (written, found)
    assert all(Path(p).is_relative_to(state_dir) for p in found), found
    # The host's own top-level directories are all refused: the guest's root is read-only.
    for top in ("/home", "/mnt", "/opt", "/srv", "/media"):
        if top in outcome:
            assert outcome[top] == "refused", (top, report)


def probes_in(state_dir: Path, probe: str) -> list[str]:
    return sorted(str(p) for p in state_dir.rglob(probe + "*"))


def test_root_in_a_guest_writes_nothing_on_the_host(sim_guest, tmp_path):
    spec = json.loads((sim_guest.state_dir / "holder-spec.json").read_text())
    targets = host_targets(spec, (str(tmp_path), str(sim_guest.state_dir)))
    probe = f".hvbsd-probe-{uuid.uuid4().hex}"
    ran = sim_guest.exec(["sh", "-c", SWEEP, "sh", probe], input="\n".join(targets) + "\n",
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count("\n") >= len(targets)
    # The ones that must work do: the guest's own places.
    inside = outcomes(ran.stdout)
    for own in ("/tmp", "/etc", "/usr", "/var", "/root"):
        assert inside.get(own) == "wrote", (own, ran.stdout)
    assert_contained(targets, ran.stdout, probe, probes_in(sim_guest.state_dir, probe),
                     sim_guest.state_dir)


def test_the_guests_tmp_var_tmp_and_dev_shm_are_its_own(sim_guest):
    probe = f".hvbsd-probe-{uuid.uuid4().hex}"
    for directory in ("/tmp", "/var/tmp", "/dev/shm"):
        ran = sim_guest.exec(["sh", "-c", f"echo inside > {directory}/{probe}"])
        assert ran.returncode == 0, ran.stderr
        assert not os.path.lexists(f"{directory}/{probe}")
        assert sim_guest.path(f"{directory}/{probe}").read_text() == "inside\n"
        assert probes_in(sim_guest.state_dir, probe), directory


ESCAPES = r"""
import ctypes, json, os, sys
from hvbsd.sim import namespace as n

checkout = sys.argv[1]
results = {}

def attempt(name, action):
    try:
        action()
        results[name] = "done"
    except OSError as error:
        results[name] = error.errno

def write(path):
    with open(path, "w") as stream:
        stream.write("x")

def bind_tree_and_write():
    os.makedirs("/tmp/tree", exist_ok=True)
    n.mount(checkout, "/tmp/tree", None, n.MS_BIND | n.MS_REC)
    write("/tmp/tree/.hvbsd-escape")

def remount(path, flags=0):
    n.mount("none", path, None, n.MS_REMOUNT | n.MS_BIND | flags)

def remount_proc_writable():
    remount("/proc", n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC)

def fresh_proc():
    os.makedirs("/tmp/proc", exist_ok=True)
    n.mount("proc", "/tmp/proc", "proc", 0)

def join_outer_user_namespace():
    fd = os.open(n.PARENT_USERNS, os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, n.CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "setns")

attempt("remount_checkout_writable", lambda: remount(checkout))
attempt("remount_root_writable", lambda: remount("/", n.MS_NOSUID))
attempt("remount_proc_writable", remount_proc_writable)
attempt("unmount_checkout", lambda: n.umount(checkout, n.MNT_DETACH))
attempt("unmount_tmp", lambda: n.umount("/tmp", n.MNT_DETACH))
attempt("fresh_proc", fresh_proc)
attempt("bind_checkout_and_write", bind_tree_and_write)
attempt("join_outer_user_namespace", join_outer_user_namespace)
attempt("write_sysctl", lambda: write("/proc/sys/kernel/hostname"))
attempt("write_sys", lambda: write("/sys/kernel/uevent_helper"))
attempt("write_checkout", lambda: write(os.path.join(checkout, ".hvbsd-escape")))
print(json.dumps(results))
"""


def test_root_in_a_guest_cannot_undo_its_read_only_mounts(sim_guest):
    checkout = os.path.dirname(os.path.dirname(os.path.realpath(hvbsd.__file__)))
    ran = sim_guest.exec(["/usr/local/bin/python3", "-c", ESCAPES, checkout], text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)
    assert "done" not in results.values(), results
    assert len(results) == 11
    assert not os.path.lexists(os.path.join(checkout, ".hvbsd-escape"))


def test_guest_has_no_network_of_the_hosts(sim_guest):
    # Its own network namespace: no host interface, no host abstract socket.
    ran = sim_guest.exec(["cat", "/proc/net/dev"], text=True)
    assert ran.returncode == 0, ran.stderr
    names = [line.split(":")[0].strip() for line in ran.stdout.splitlines()[2:]]
    assert names == ["lo"]


# -- as an ordinary user -----------------------------------------------------------------


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


def _readable_sources(tmp_path: Path) -> Path:
    """A copy of the hvbsd package that nobody can import, wherever the checkout lives."""
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


NOBODY_SWEEP = r"""
import json, pathlib, sys
from hvbsd.sim.guest import Guest
root, probe, sweep = sys.argv[1], sys.argv[2], sys.argv[3]
targets = sys.stdin.read()
g = Guest.create("u1", root)
try:
    spec = json.loads((g.state_dir / "holder-spec.json").read_text())
    r = g.exec(["sh", "-c", sweep, "sh", probe], input=targets, text=True, timeout=60)
    found = sorted(str(p) for p in g.state_dir.rglob(probe + "*"))
    print(json.dumps({"status": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
                      "binds": spec.get("read_only_binds", []), "found": found,
                      "state_dir": str(g.state_dir)}))
finally:
    g.destroy()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_an_ordinary_user_in_a_guest_writes_nothing_on_the_host(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) not installed")
    if namespace.probe() is not None:
        pytest.skip(f"simulated guests unavailable: {namespace.probe()}")
    python = _unprivileged_python()
    if python is None:
        pytest.skip("no Python this machine lets an ordinary user run")
    nobody = pwd.getpwnam("nobody")
    source = _readable_sources(tmp_path)
    root = tmp_path / "nobody-sim"
    root.mkdir()
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    # Directories nobody may write on the host: the guest must not reach them either.
    writable = tmp_path / "nobody-writable"
    writable.mkdir()
    os.chown(writable, nobody.pw_uid, nobody.pw_gid)
    targets = host_targets({"read_only_binds": []},
                           (str(source), str(source / "hvbsd"), str(writable), "/var/tmp",
                            "/dev/shm"))
    targets = [t for t in targets if os.path.isdir(t)]
    probe = f".hvbsd-probe-{uuid.uuid4().hex}"
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c",
         NOBODY_SWEEP, str(root), probe, SWEEP],
        input="\n".join(targets) + "\n",
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(source), "HOME": "/"},
        capture_output=True, text=True, timeout=120, cwd="/",
    )
    if "cannot create user namespaces" in result.stderr:
        pytest.skip("this kernel does not give ordinary users user namespaces")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == 0, report["stderr"]
    # The copy of the sources is bound read-only into the guest (it lives under /tmp).
    assert str(source) in report["binds"]
    assert_contained(targets, report["stdout"], probe, report["found"],
                     Path(report["state_dir"]))
    outcome = outcomes(report["stdout"])
    assert outcome[str(writable)] == "refused"
    assert outcome[str(source)] == "refused"
    assert list(root.iterdir()) == [root / ".lock"]


def test_links_the_guest_leaves_in_its_kernel_directory_are_never_followed(sim_guest, tmp_path):
    from hvbsd.sim.kernel import Kernel, KernelError

    planted = tmp_path / "planted-by-the-guest"
    ran = sim_guest.exec(["sh", "-c", f"ln -sf {planted} /var/run/hvbsd-sim/kernel.lock"])
    assert ran.returncode == 0, ran.stderr
    with pytest.raises(KernelError, match=r"kernel\.lock: is a symbolic link"):
        Kernel(sim_guest.kernel_dir).snapshot()
    assert not os.path.lexists(planted)

    sim_guest.exec(["rm", "/var/run/hvbsd-sim/kernel.lock"], check=True)
    fifo = "rm /var/run/hvbsd-sim/kernel.json && mkfifo /var/run/hvbsd-sim/kernel.json"
    assert sim_guest.exec(["sh", "-c", fifo]).returncode == 0
    with pytest.raises(KernelError, match=r"kernel\.json: not a regular file"):
        Kernel(sim_guest.kernel_dir).snapshot()  # refused at once, not a read that never ends
    sim_guest.exec(["sh", "-c", "rm /var/run/hvbsd-sim/kernel.json; ln -s /dev/zero "
                    "/var/run/hvbsd-sim/kernel.json"], check=True)
    with pytest.raises(KernelError, match=r"kernel\.json"):
        Kernel(sim_guest.kernel_dir).snapshot()


def test_boot_reads_no_host_file_through_links_the_guest_left_in_boot(sim_guest, tmp_path):
    from hvbsd.sim.kernel import Kernel

    host_file = tmp_path / "host-loader.conf"
    host_file.write_text('hvbsd.probe.host="leaked"\n')
    os.chmod(tmp_path, 0o755)
    plant = (
        f"ln -s {host_file} /boot/loader.conf && mkdir -p /boot/loader.conf.d && "
        f"ln -s {host_file} /boot/loader.conf.d/a.conf && mkfifo /boot/loader.conf.d/b.conf && "
        "echo 'hvbsd.probe.guest=\"own\"' > /boot/loader.conf.d/c.conf"
    )
    ran = sim_guest.exec(["sh", "-c", plant])
    assert ran.returncode == 0, ran.stderr
    sim_guest.stop()
    sim_guest.start()  # would hang on the FIFO, or read the host's file through the links
    loader = Kernel(sim_guest.kernel_dir).snapshot().loader
    assert loader == {"hvbsd.probe.guest": "own"}


def test_guest_path_follows_the_guests_links_inside_the_guest_not_on_the_host(sim_guest, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    climb = "../" * 12 + str(secret).lstrip("/")
    plant = (f"ln -s {secret} /etc/absolute && ln -s {climb} /etc/climbing && "
             "ln -s /usr/local/etc /etc/usr-local-etc && echo own > /usr/local/etc/own")
    assert sim_guest.exec(["sh", "-c", plant]).returncode == 0
    for running in (True, False):
        if not running:
            sim_guest.stop()
        for name in ("/etc/absolute", "/etc/climbing"):
            with pytest.raises(FileNotFoundError):
                sim_guest.path(name).read_text()
        # A link within the guest still leads where the guest would be led.
        assert sim_guest.path("/etc/usr-local-etc/own").read_text() == "own\n"
    sim_guest.start()
