"""stat, mount, pkg, uname, freebsd-version, logger, pgrep/pkill, daemon, dhclient."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvbsd import releases
from hvbsd.sim.kernel import Kernel


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stat_f_with_testinfras_formats(run_command, tmp_path):
    target = tmp_path / "file"
    target.write_text("12345")
    target.chmod(0o640)
    info = target.stat()
    result = run_command("stat", "-f", "%Su %u %Sg %g %Lp %m %z", str(target))
    assert result.returncode == 0
    user, uid, group, gid, mode, mtime, size = result.stdout.split()
    assert (int(uid), int(gid), mode, int(mtime), size) == (
        info.st_uid,
        info.st_gid,
        "640",
        int(info.st_mtime),
        "5",
    )
    assert user and group


def test_stat_l_follows_links_and_errors_name_the_call(run_command, tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "file", tmp_path / "link")
    assert run_command("stat", "-f", "%HT%SY", str(tmp_path / "link")).returncode == 0
    assert run_command("stat", "-L", "-f", "%z", str(tmp_path / "link")).stdout == "1\n"
    missing = run_command("stat", "-f", "%z", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr == f"stat: {tmp_path / 'nope'}: lstat: No such file or directory\n"


def test_mount_p_prints_fstab_lines(run_command):
    lines = run_command("mount", "-p").stdout.splitlines()
    assert lines[0] == "/dev/gpt/rootfs\t\t/\t\t\tufs\trw\t\t1 1"
    assert "tank/data\t\t/data\t\t\tzfs\trw\t\t0 0" in lines
    assert "/dev/cd0\t\t/mnt/cdrom\t\tufs\tro\t\t2 2" in lines


def test_pkg_query_exit_codes_as_testinfra_expects(run_command):
    found = run_command("pkg", "query", "%n %v", "python311")
    assert (found.returncode, found.stdout) == (0, "python311 3.11.9\n")
    missing = run_command("pkg", "query", "%n", "nginx")
    assert (missing.returncode, missing.stdout) == (69, "")
    assert run_command("pkg", "install", "-y", "nginx").returncode == 0
    assert run_command("pkg", "query", "%n", "nginx").stdout == "nginx\n"
    assert run_command("pkg", "query").returncode == 64


def test_uname_and_freebsd_version_answer_the_default_release(run_command):
    default = releases.default()
    assert run_command("uname").stdout == "FreeBSD\n"
    assert run_command("uname", "-m").stdout == "amd64\n"
    assert run_command("uname", "-r").stdout == f"{default.osrelease}\n"
    assert run_command("uname", "-n", "-s").stdout == "FreeBSD g1\n"
    assert run_command("uname", "-a").stdout.startswith(
        f"FreeBSD g1 {default.osrelease} FreeBSD {default.osrelease} ")
    bad = run_command("uname", "-z")
    assert (bad.returncode, bad.stderr) == (
        1,
        "uname: illegal option -- z\nusage: uname [-abiKmnoprsUv]\n",
    )
    assert run_command("freebsd-version").stdout == f"{default.osrelease}\n"


@pytest.mark.parametrize("release", releases.supported(), ids=lambda r: r.name)
def test_each_release_kernel_answers_its_own_version(release, tmp_path):
    directory = tmp_path / f"kernel-{release.name}"
    Kernel.create(directory, hostname="g2", release=release)
    environment = dict(os.environ, HVBSD_SIM_KERNEL_DIR=str(directory))

    def output(*argv: str) -> str:
        completed = subprocess.run([sys.executable, "-m", "hvbsd.sim.freebsd", *argv],
                                   capture_output=True, text=True, env=environment,
                                   check=True, timeout=60)
        return completed.stdout

    assert output("uname", "-r") == f"{release.osrelease}\n"
    assert output("uname", "-v") == f"{release.version_string}\n"
    assert output("uname", "-K") == f"{release.osreldate}\n"
    assert output("uname", "-a") == (
        f"FreeBSD g2 {release.osrelease} {release.version_string} amd64\n")
    assert output("freebsd-version", "-k", "-u") == f"{release.osrelease}\n" * 2
    assert output("sysctl", "-n", "kern.osreldate") == f"{release.osreldate}\n"
    assert output("sysctl", "-n", "kern.osrelease") == f"{release.osrelease}\n"


def test_logger_appends_syslog_lines(run_command, tmp_path):
    assert run_command("logger", "-t", "hvbsd", "VF", "attached").returncode == 0
    assert run_command("logger", "-i", "-t", "x", "with pid").returncode == 0
    run_command("logger", "-t", "multi", input="one\ntwo\n")
    lines = (tmp_path / "messages").read_text().splitlines()
    assert re.fullmatch(r"[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d g1 hvbsd: VF attached", lines[0])
    assert re.search(r" g1 x\[\d+\]: with pid$", lines[1])
    assert [line.split(": ", 1)[1] for line in lines[2:]] == ["one", "two"]
    bad = run_command("logger", "-p", "user.loud", "x")
    assert (bad.returncode, bad.stderr) == (1, "logger: unknown priority name: loud\n")


def test_daemon_supervises_with_pidfiles_and_cleans_up(run_command, tmp_path):
    child_pidfile, super_pidfile = tmp_path / "child.pid", tmp_path / "super.pid"
    result = run_command(
        "daemon", "-f", "-p", str(child_pidfile), "-P", str(super_pidfile), "sleep", "60"
    )
    assert result.returncode == 0
    # pidfile_open() creates both files at once; the pids follow (as daemon(8)).
    assert _wait_for(lambda: child_pidfile.exists() and super_pidfile.read_text().strip())
    supervisor = int(super_pidfile.read_text())

    def title() -> str:
        return Path(f"/proc/{supervisor}/cmdline").read_bytes().split(b"\0")[0].decode()

    assert _wait_for(lambda: re.fullmatch(r"daemon: sleep\[\d+\] \(daemon\)", title())), title()
    second = run_command("daemon", "-f", "-p", str(child_pidfile), "sleep", "60")
    assert second.returncode == 3
    assert second.stderr.startswith("daemon: process already running, pid: ")
    os.kill(supervisor, 15)
    assert _wait_for(lambda: not child_pidfile.exists() and not super_pidfile.exists())


def test_daemon_restarts_the_child_with_r(run_command, tmp_path):
    child_pidfile, super_pidfile = tmp_path / "child.pid", tmp_path / "super.pid"
    run_command(
        "daemon", "-f", "-r", "-p", str(child_pidfile), "-P", str(super_pidfile), "sleep", "60"
    )
    assert _wait_for(lambda: child_pidfile.exists() and child_pidfile.read_text().strip())
    first = int(child_pidfile.read_text())
    os.kill(first, 15)
    assert _wait_for(lambda: child_pidfile.read_text().strip() not in ("", str(first)))
    os.kill(int(super_pidfile.read_text()), 15)
    assert _wait_for(lambda: not super_pidfile.exists())


def test_daemon_without_command_is_a_usage_error(run_command):
    result = run_command("daemon", "-f")
    assert result.returncode == 1
    assert result.stderr.startswith("usage: daemon")


def test_pgrep_and_pkill_by_pidfile_and_name(run_command, tmp_path):
    pidfile = tmp_path / "p.pid"
    run_command("daemon", "-f", "-p", str(pidfile), "sleep", "60")
    assert _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = pidfile.read_text().strip()
    assert run_command("pgrep", "-F", str(pidfile)).stdout == f"{pid}\n"
    assert pid in run_command("pgrep", "-x", "sleep").stdout.split()
    assert run_command("pgrep", "-x", "slee").returncode == 1
    assert run_command("pkill", "-F", str(pidfile)).returncode == 0
    assert _wait_for(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        )
    )
    missing = run_command("pkill", "-F", str(tmp_path / "none.pid"))
    assert missing.returncode == 3
    assert run_command("pgrep").returncode == 2


def test_dhclient_binds_a_lease_and_exits_when_its_address_goes(run_command, kernel_dir, tmp_path):
    pidfile = tmp_path / "dhclient.hn1.pid"
    result = run_command("dhclient", "-p", str(pidfile), "hn1")
    assert result.returncode == 0, result.stderr
    assert "bound to 10.0.0.4" in result.stderr
    state = Kernel(kernel_dir).snapshot()
    assert [a.address for a in state.interface("hn1").inet] == ["10.0.0.4"]
    assert _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())

    def title() -> str:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()

    # The pidfile is written just before the re-exec that takes the title.
    assert _wait_for(lambda: title() == "dhclient: hn1"), title()
    again = run_command("dhclient", "-p", str(pidfile), "hn1")
    assert (again.returncode, again.stderr) == (1, f"dhclient already running, pid: {pid}.\n")
    run_command("ifconfig", "hn1", "inet", "10.0.0.4", "-alias")
    assert _wait_for(lambda: not pidfile.exists())
    assert (
        "My address (10.0.0.4) was deleted, dhclient exiting" in (tmp_path / "messages").read_text()
    )


def test_dhclient_exits_on_sigterm_removing_its_pidfile(run_command, tmp_path):
    pidfile = tmp_path / "dhclient.hn0.pid"
    assert run_command("dhclient", "-b", "-p", str(pidfile), "hn0").returncode == 0
    assert _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    os.kill(int(pidfile.read_text()), 15)
    assert _wait_for(lambda: not pidfile.exists())


def test_dhclient_on_a_missing_interface(run_command):
    result = run_command("dhclient", "hn9")
    assert (result.returncode, result.stderr) == (1, "dhclient: hn9: not found\n")


def test_pgrep_names_the_guests_sh_as_freebsd_does(run_command, tmp_path):
    # pgrep.c matches p_comm ("sh" for a #! script run by /bin/sh) and, with -f,
    # the arguments as ps shows them: the guest's sh wrapper execs bash as sh-freebsd
    from hvbsd.sim.freebsd import SH_NAME, host_bash

    bash = host_bash()
    if bash is None:
        pytest.skip("no bash")
    script = tmp_path / "marker-script"
    script.write_text("sleep 30\n")
    child = subprocess.Popen(["bash", "-c", f'exec -a {SH_NAME} {bash} "$0"', str(script)])
    try:
        for _ in range(500):
            listed = run_command("pgrep", "-lf", "marker-script").stdout
            if listed:
                break
            time.sleep(0.01)
        assert f"{child.pid} /bin/sh {script}\n" in listed
        assert str(child.pid) in run_command("pgrep", "-x", "sh").stdout.split()
    finally:
        child.kill()
        child.wait()
