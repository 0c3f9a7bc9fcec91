"""Simulated guests: lifecycle, isolation from the host, what processes inside see."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hvbsd import releases
from hvbsd.sim import namespace
from hvbsd.sim.freebsd import base_files
from hvbsd.sim.guest import Guest, list_guests

pytestmark = pytest.mark.slow


def hvbsd(*args: str, env: dict[str, str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hvbsd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **options,
    )


def mounted_under(path: Path) -> list[str]:
    with open("/proc/mounts", encoding="utf-8") as stream:
        return [line for line in stream if str(path) in line]


def test_create_exec_destroy_round_trip_leaves_nothing(hvbsd_env, sim_root):
    created = hvbsd("sim", "guest", "create", "g1", env=hvbsd_env)
    assert created.returncode == 0, created.stderr
    script = "uname -s; ifconfig -l; sysrc hostname=g1 >/dev/null && sysrc -n hostname"
    ran = hvbsd("sim", "guest", "exec", "g1", "--", "sh", "-c", script, env=hvbsd_env)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "FreeBSD"
    assert lines[1].split() == ["lo0", "hn0"]
    assert lines[2] == "g1"

    guest = Guest("g1", sim_root)
    holder = guest.pid
    pid_ns = namespace.pid_namespace_of(holder)
    # A process left running inside must die with the guest.
    guest.exec(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
    assert len(namespace.processes_in_namespace(pid_ns)) >= 2

    destroyed = hvbsd("sim", "guest", "destroy", "g1", env=hvbsd_env)
    assert destroyed.returncode == 0, destroyed.stderr
    assert namespace.processes_in_namespace(pid_ns) == []
    assert namespace.process_starttime(holder) is None
    assert mounted_under(sim_root) == []
    assert list(sim_root.iterdir()) == [sim_root / ".lock"]
    assert hvbsd("sim", "guest", "list", env=hvbsd_env).stdout == ""


@pytest.mark.parametrize("release", releases.supported(), ids=lambda r: r.name)
def test_guest_of_each_release_answers_as_that_release(hvbsd_env, sim_root, release):
    name = "r" + release.name.replace(".", "-")
    created = hvbsd("sim", "guest", "create", name, "--release", release.name, env=hvbsd_env)
    assert created.returncode == 0, created.stderr
    assert f"FreeBSD {release.name}" in created.stdout
    guest = Guest(name, sim_root)
    try:
        assert guest.release == release
        assert guest.config()["release"] == release.name
        script = ("freebsd-version; freebsd-version -k; uname -r; uname -v; uname -K; "
                  "sysctl -n kern.osreldate; "
                  "/usr/local/bin/python3 -c "
                  "'import os; u = os.uname(); print(u.release); print(u.version)'")
        ran = guest.exec(["sh", "-c", script], text=True)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines() == [
            release.osrelease, release.osrelease, release.osrelease, release.version_string,
            str(release.osreldate), str(release.osreldate),
            release.osrelease, release.version_string,
        ]
        stock = {path: content for path, content, _mode in base_files(release.stock)}
        for path in ("/etc/devd.conf", "/etc/devd/hyperv.conf"):
            assert guest.path(path).read_bytes() == stock[path]
    finally:
        guest.destroy()


def test_guest_without_a_release_is_the_default_release(sim_guest):
    assert sim_guest.release == releases.default()
    ran = sim_guest.exec(["uname", "-r"], text=True)
    assert ran.stdout == f"{releases.default().osrelease}\n"


@pytest.mark.parametrize(
    "guest_path",
    ["/etc/hvbsd-probe", "/usr/local/etc/hvbsd-probe", "/boot/hvbsd-probe",
     "/root/hvbsd-probe", "/tmp/hvbsd-probe"],
)
def test_writes_inside_never_reach_the_host(sim_guest, guest_path):
    assert not os.path.lexists(guest_path)
    result = sim_guest.exec(["sh", "-c", f"echo inside > {guest_path} && cat {guest_path}"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"inside\n"
    assert not os.path.lexists(guest_path)
    assert sim_guest.path(guest_path).read_text() == "inside\n"


def test_guest_sees_only_its_own_processes_with_the_holder_as_pid_1(sim_guest):
    result = sim_guest.exec(["sh", "-c", "ls /proc | grep -E '^[0-9]+$'; cat /proc/1/cmdline"])
    pids = [line for line in result.stdout.decode().splitlines() if line.isdigit()]
    # The holder, sh, ls and grep: nothing of the host.
    assert len(pids) <= 5
    assert "1" in pids
    assert b"hvbsd.sim.namespace" in result.stdout


def test_guest_python_reports_freebsd_and_imports_hvbsd_and_ansible(sim_guest):
    code = (
        "import os, platform, sys, hvbsd, ansible.module_utils.basic;"
        "print(os.uname().sysname, platform.system(), platform.release(), sys.prefix,"
        " os.uname().nodename)"
    )
    result = sim_guest.exec(["/usr/local/bin/python3", "-c", code], text=True)
    assert result.returncode == 0, result.stderr
    sysname, system, release, prefix, node = result.stdout.split()
    assert (sysname, system, prefix, node) == ("FreeBSD", "FreeBSD", "/usr/local", "g1")
    assert release.endswith("-RELEASE")


def test_interpreted_daemon_keeps_its_freebsd_argv(sim_guest):
    script = "#!/usr/local/bin/python3\nimport time\ntime.sleep(60)\n"
    sim_guest.exec(
        ["sh", "-c", "cat > /usr/local/sbin/napper && chmod 755 /usr/local/sbin/napper"],
        input=script.encode(),
        check=True,
    )
    sim_guest.exec(["sh", "-c", "/usr/local/sbin/napper >/dev/null 2>&1 &"], check=True)
    deadline = time.monotonic() + 10
    while True:
        listing = sim_guest.exec(
            ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"],
            text=True,
        ).stdout
        if "napper" in listing or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "/usr/local/bin/python3 /usr/local/sbin/napper " in listing


def test_dev_is_private_with_the_usual_nodes(sim_guest):
    result = sim_guest.exec(
        ["sh", "-c", "head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null; readlink /dev/fd;"
         " ls /dev"],
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:5] == ["00", "00", "00", "00", "/proc/self/fd"]
    assert {"null", "zero", "random", "urandom", "full", "tty", "stdin", "stdout"} <= set(lines)
    # The simulated host creates its sockets in the state directory's dev/.
    (sim_guest.state_dir / "dev" / "from-host").write_text("seen\n")
    assert sim_guest.exec(["cat", "/dev/from-host"]).stdout == b"seen\n"


def test_kernel_directory_is_bound_at_var_run_hvbsd_sim(sim_guest):
    inside = sim_guest.exec(["cat", "/var/run/hvbsd-sim/kernel.json"])
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout == (sim_guest.kernel_dir / "kernel.json").read_bytes()


def test_exec_uses_a_freebsd_root_environment_unless_given_one(sim_guest):
    default = sim_guest.exec(["sh", "-c", "echo $PATH $HOME $USER $SHELL; id -u"], text=True)
    assert default.stdout.split() == [
        "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin",
        "/root", "root", "/bin/sh", "0",
    ]
    given = sim_guest.exec(
        ["/bin/sh", "-c", "echo $MARK $HOME"], env={"MARK": "given", "PATH": "/bin"}, text=True
    )
    assert given.stdout.split() == ["given"]


def test_exec_passes_input_and_exit_status(sim_guest):
    result = sim_guest.exec(["sh", "-c", "tr a-z A-Z; exit 7"], input=b"abc")
    assert (result.returncode, result.stdout) == (7, b"ABC")


def test_exec_timeout_kills_the_command_inside(sim_guest):
    with pytest.raises(subprocess.TimeoutExpired):
        sim_guest.exec(["sh", "-c", "sleep 30"], timeout=0.5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listing = sim_guest.exec(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]).stdout
        if b"sleep 30" not in listing:
            break
        time.sleep(0.05)
    assert b"sleep 30" not in listing


def test_concurrent_execs_each_get_their_own_result(sim_guest):
    results: dict[int, subprocess.CompletedProcess] = {}

    def run(index: int) -> None:
        results[index] = sim_guest.exec(
            ["sh", "-c", f"echo {index} > /tmp/n{index}; sysctl -n kern.ostype; cat /tmp/n{index}"],
            text=True,
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for index in range(12):
        assert results[index].returncode == 0, results[index].stderr
        assert results[index].stdout.split() == ["FreeBSD", str(index)]


def test_stop_keeps_state_and_start_brings_it_back(sim_guest):
    sim_guest.exec(["sh", "-c", "echo kept > /etc/kept"], check=True)
    sim_guest.stop()
    assert sim_guest.status == "stopped"
    assert sim_guest.pid is None
    # Stopped: path() reads the upper layer directly.
    assert sim_guest.path("/etc/kept").read_text() == "kept\n"
    sim_guest.start()
    assert sim_guest.status == "running"
    assert sim_guest.exec(["cat", "/etc/kept"]).stdout == b"kept\n"


def test_freebsd_commands_are_installed_as_python_wrappers(sim_guest):
    wrapper = sim_guest.path("/sbin/ifconfig").read_text()
    assert wrapper.startswith("#!/bin/sh\n")
    assert 'exec /usr/local/bin/python3 -m hvbsd.sim.freebsd ifconfig "$@"' in wrapper


def test_list_reports_each_guest_and_its_status(sim_guests, sim_root, hvbsd_env):
    sim_guests("g1")
    sim_guests("g2", preset="zfs", nics=2).stop()
    listing = hvbsd("sim", "guest", "list", env=hvbsd_env)
    rows = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert rows == {"g1": "running", "g2": "stopped"}
    assert [g.name for g in list_guests(sim_root)] == ["g1", "g2"]


def test_create_and_start_take_well_under_two_seconds(sim_guests):
    started = time.monotonic()
    guest = sim_guests("quick")
    elapsed = time.monotonic() - started
    assert guest.status == "running"
    assert elapsed < 2.0, f"create+start took {elapsed:.2f} s"


def test_exec_takes_state_dir_after_the_name_and_returns_the_command_status(
    sim_guest, sim_root, hvbsd_env
):
    env = dict(hvbsd_env, HVBSD_SIM_HOME="/nonexistent")
    result = hvbsd("sim", "guest", "exec", "g1", "--state-dir", str(sim_root), "--",
                   "sh", "-c", "echo $0; exit 3", env=env)
    assert (result.returncode, result.stdout) == (3, "sh\n")
    missing = hvbsd("sim", "guest", "exec", "g1", "--", "no-such-command", env=hvbsd_env)
    assert missing.returncode == 127
    assert "no-such-command" in missing.stderr


def _write(guest, path: str, text: str) -> None:
    guest.exec(["sh", "-c", f"cat > {path}"], input=text.encode(), check=True)


def test_boot_devd_gives_a_dhcp_interface_its_lease_through_link_up(sim_guest):
    # FreeBSD: netif brings hn0 up (no lease: DHCP is not synchronous), devd
    # starts after netif and reads the queued IFNET LINK_UP, whose stock rule
    # runs "service dhclient quietstart hn0"
    _write(sim_guest, "/etc/rc.conf", 'hostname="g1"\nifconfig_hn0="DHCP"\n')
    booted = sim_guest.exec(["/etc/rc.d/netif", "start", "hn0"], text=True)
    assert booted.stdout.startswith("Starting Network: hn0.\n"), booted.stderr
    before = sim_guest.exec(["ifconfig", "hn0", "inet"], text=True).stdout
    assert "\tinet " not in before
    records = sim_guest.boot_devd()
    assert [r.event.line for r in records] == ["!system=IFNET subsystem=hn0 type=LINK_UP"]
    assert [c.split()[:3] for c in records[0].commands] == [["service", "dhclient", "quietstart"]]
    assert records[0].statuses == (0,)
    status = sim_guest.exec(["service", "dhclient", "status", "hn0"], text=True)
    assert status.returncode == 0 and status.stdout.startswith("dhclient is running as pid ")
    after = sim_guest.exec(["ifconfig", "hn0", "inet"], text=True).stdout
    assert "\tinet 10.0.0.4 " in after
    log = (sim_guest.state_dir / "boot.log").read_text()
    assert "devd at boot: exit 0\nStarting devd.\n" in log
    assert "type=LINK_UP" in log


def test_boot_devd_reads_nothing_when_devd_is_disabled(sim_guest):
    _write(sim_guest, "/etc/rc.conf", 'ifconfig_hn0="DHCP"\ndevd_enable="NO"\n')
    sim_guest.exec(["/etc/rc.d/netif", "start", "hn0"], check=True)
    assert sim_guest.boot_devd() == []
    status = sim_guest.exec(["service", "dhclient", "status", "hn0"], text=True)
    assert status.stdout == "dhclient is not running.\n"


def test_guest_has_freebsds_wheel_group(sim_guest):
    result = sim_guest.exec(
        ["sh", "-c", "install -d -o root -g wheel -m 755 /var/run/w && stat -f %g /var/run/w;"
         " grep '^wheel:' /etc/group"],
        text=True,
    )
    assert result.stdout == "0\nwheel:*:0:root\n", result.stderr
