"""`hvbsd sim kvp` end to end: the rendered configuration, devd and the real hvbsd_kvpd.

Each guest gets what `hvbsd render` produces plus the zipapp the role installs
(/usr/local/sbin/hvbsd_kvpd). Starting the simulated host makes
/dev/hv_kvp_dev appear; devd's installed rule runs `service hvbsd_kvpd
quietstart`, and the rendered rc.d script starts the daemon with the flags of
/etc/rc.conf.d/hvbsd_kvpd. The host's requests go through the host process's
simulated hv_kvp driver.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from hvbsd.kvp.cli import archive_bytes
from hvbsd.sim import host
from hvbsd.sim.guest import Guest
from hvbsd.sim.kernel import Kernel
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

DAEMON = "/usr/local/sbin/hvbsd_kvpd"


def deploy(guest: Guest, **variables: Any) -> None:
    """What the roles would install: the rendered files and the KVP daemon."""
    install_rendered(guest, variables, boot=False)
    guest.exec(["sh", "-c", f"cat > {DAEMON} && chmod 0755 {DAEMON}"], input=archive_bytes(),
               check=True)


def kvp(guest: Guest, env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hvbsd", "sim", "kvp", guest.name, *words],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def daemon_running(guest: Guest) -> bool:
    return guest.exec(["service", "hvbsd_kvpd", "status"], text=True).returncode == 0


def hn0_mac(guest: Guest) -> str:
    ether = Kernel(guest.kernel_dir).snapshot().interface("hn0").ether
    assert ether
    return ether


def test_devd_starts_hvbsd_kvpd_and_the_host_reads_the_guests_auto_pool(sim_guests, hvbsd_env):
    guest = sim_guests("k1")
    deploy(guest)
    result = kvp(guest, hvbsd_env, "enum", "auto")
    assert result.returncode == 0, result.stderr
    entries = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert entries["OSName"] == "FreeBSD"
    assert entries["OSBuildNumber"] == guest.exec(
        ["uname", "-r"], text=True, check=True).stdout.strip().split("-")[0]
    assert "FullyQualifiedDomainName" in entries
    # the daemon came from the installed devd rule and the rendered rc.d script
    assert daemon_running(guest)
    status = guest.exec([DAEMON, "--status"], text=True)
    assert status.returncode == 0 and "lookup: hvbsd" in status.stdout, status.stdout


def test_the_host_sets_gets_and_deletes_a_key_kept_in_the_guests_pool_file(
        sim_guests, hvbsd_env):
    guest = sim_guests("k2")
    deploy(guest)
    assert kvp(guest, hvbsd_env, "set", "external", "Site", "Zürich-2").returncode == 0
    got = kvp(guest, hvbsd_env, "get", "external", "Site")
    assert (got.returncode, got.stdout) == (0, "Zürich-2\n"), got.stderr
    pool = guest.path("/var/db/hyperv/pool/.kvp_pool_0").read_bytes()
    assert b"Site\0" in pool and "Zürich-2".encode() in pool
    assert kvp(guest, hvbsd_env, "delete", "external", "Site").returncode == 0
    gone = kvp(guest, hvbsd_env, "get", "external", "Site")
    assert gone.returncode == 1 and gone.stderr.count("\n") == 1, gone.stderr


def test_the_host_sees_the_address_of_hn0s_adapter(sim_guests, hvbsd_env):
    guest = sim_guests("k3")
    deploy(guest)
    guest.exec(["ifconfig", "hn0", "inet", "10.0.7.4/24"], check=True)
    result = kvp(guest, hvbsd_env, "ip", hn0_mac(guest))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert "10.0.7.4" in lines["addresses"].split(";")
    assert "255.255.255.0" in lines["subnets"].split(";")


def test_stopping_the_host_stops_the_daemon_through_devds_destroy_rule(sim_guests, hvbsd_env):
    guest = sim_guests("k4")
    deploy(guest)
    assert kvp(guest, hvbsd_env, "enum", "auto").returncode == 0
    assert daemon_running(guest)
    assert host.stop(guest)
    deadline = time.monotonic() + 30
    while daemon_running(guest):
        assert time.monotonic() < deadline, "hvbsd_kvpd still runs after DESTROY"
        time.sleep(0.2)
    assert not guest.path("/var/run/hvbsd_kvpd.pid").exists() or not daemon_running(guest)


@pytest.mark.parametrize("words", [
    [], ["frob"], ["get", "nopool", "key"], ["get", "external"], ["ip", "not-a-mac"],
    ["ip"], ["set-ip", "00:15:5d:0a:0b:0c"], ["enum", "9"], ["set", "guest", "k", "\udcff"],
    ["get", "external", "x" * 5000], ["ip", "00:15:5d:0a:0b:0c", "extra"],
])
def test_bad_input_is_one_line_exit_2_and_starts_no_host(sim_guests, hvbsd_env, words):
    guest = sim_guests("k5")
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd", "sim", "kvp", guest.name, *words], env=hvbsd_env,
        capture_output=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr
    assert result.stderr.startswith(b"hvbsd sim kvp: ")
    assert host.host_pid(guest) is None


def test_an_unknown_guest_is_named_in_one_line_exit_1(hvbsd_env, sim_guests):
    sim_guests("k6")  # the state directory exists; the guest named below does not
    result = subprocess.run([sys.executable, "-m", "hvbsd", "sim", "kvp", "nosuchguest",
                             "enum", "auto"], env=hvbsd_env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "'nosuchguest': no such guest" in result.stderr


def test_hvbsd_bundle_kvpd_writes_the_daemon_the_role_installs(tmp_path):
    out = tmp_path / "hvbsd_kvpd"
    done = subprocess.run([sys.executable, "-m", "hvbsd", "bundle-kvpd", str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == archive_bytes()
    refused = subprocess.run([sys.executable, "-m", "hvbsd", "bundle-kvpd",
                              str(tmp_path / "no" / "such" / "dir" / "x")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert not (tmp_path / "no").exists()
