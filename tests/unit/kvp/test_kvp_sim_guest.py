"""The host's view of hn0's addresses across VF attach, detach and migrate, on a simulated guest.

The daemons run the simulator's own FreeBSD commands (``ifconfig``, ``sysctl``
of :mod:`hvbsd.sim.freebsd`) over a simulated kernel, as inside a simulated
guest; the kernel changes as hvbsd's VF scripts change it (the address moves
to lagg0 when the VF comes and stays there). One daemon uses hvbsd's lookup,
one the stock daemon's, each on its own simulated device.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kvp_guest import SRC

from hvbsd.sim import hyperv_kvp as host
from hvbsd.sim.freebsd import ifconfig
from hvbsd.sim.hyperv_vss import Loop
from hvbsd.sim.kernel import Kernel


class SimGuest:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.kernel = Kernel.create(root / "kernel", nics=2, hostname="sim-guest")
        self.bin = root / "bin"
        self.bin.mkdir()
        for command in ("ifconfig", "sysctl"):
            shim = self.bin / command
            shim.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m hvbsd.sim.freebsd"
                            f" {command} \"$@\"\n")
            shim.chmod(0o755)
        (root / "rc.conf").write_text("")
        self.loop = Loop()
        self.drivers = {}
        self.daemons = []
        for lookup in ("hvbsd", "stock"):
            dev = root / f"dev-{lookup}"
            dev.mkdir()
            driver = host.KvpDriver(self.loop, dev, timeout=5.0)
            driver.attach()
            self.drivers[lookup] = driver
            env = {"PATH": f"{self.bin}:/usr/bin:/bin", "PYTHONPATH": str(SRC),
                   "HVBSD_SIM_KERNEL_DIR": str(root / "kernel")}
            self.daemons.append(subprocess.Popen(
                [sys.executable, "-m", "hvbsd.kvp", "-n", "--lookup", lookup, "--device",
                 str(driver.path), "--pool-dir", str(root / f"pool-{lookup}"), "--rc-conf",
                 str(root / "rc.conf"), "--resolv-conf", str(root / "none"), "--pidfile",
                 str(root / f"{lookup}.pid"), "--state-file", str(root / f"{lookup}.state")],
                env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for driver in self.drivers.values():
            driver.wait_registered(30)
        self.mac = self.kernel.snapshot().interface("hn0").ether.upper()

    def ifconfig(self, name: str, *words: str) -> None:
        with self.kernel.transaction() as state:
            out: list = []
            assert ifconfig.configure(state, name, list(words), out) == 0, out

    def seen(self, lookup: str) -> list:
        status, reply = self.drivers[lookup].transact(host.host_get_ip_info(self.mac), 20)
        assert status == host.HV_S_OK
        return host.decode_ip_info(reply).addresses

    def ipv4(self, lookup: str) -> list:
        return [a for a in self.seen(lookup) if ":" not in a]

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.terminate()
            daemon.wait(10)
        for driver in self.drivers.values():
            driver.detach(kill=False)
        self.loop.close()


@pytest.fixture
def sim(short_root: Path):
    guest = SimGuest(short_root)
    yield guest
    guest.close()


def test_the_host_sees_the_laggs_addresses_through_attach_detach_and_migrate(sim) -> None:
    # before the VF: the address is on hn0; both daemons tell the host
    sim.ifconfig("hn0", "inet", "10.0.0.4/24", "up")
    assert sim.ipv4("hvbsd") == sim.ipv4("stock") == ["10.0.0.4"]

    # VF attach: hyperv_vfup builds lagg0 over the VF and hn0 and moves the address
    sim.kernel.attach_vf("hn0", "mce0")
    sim.ifconfig("hn0", "inet", "10.0.0.4", "-alias")
    sim.ifconfig("lagg0", "create")
    sim.ifconfig("lagg0", "laggproto", "failover", "laggport", "mce0", "laggport", "hn0",
                 "inet", "10.0.0.4/24", "up")
    sim.ifconfig("lagg0", "inet6", "2001:db8::4", "prefixlen", "64")
    assert sim.ipv4("hvbsd") == ["10.0.0.4"]
    assert "2001:db8::4" in sim.seen("hvbsd")
    assert sim.ipv4("stock") == []  # the stock daemon reports hn0: no IPv4 at all

    # VF detach (hot-unplug, e.g. host servicing): lagg0 keeps hn0 and the address
    sim.kernel.detach_vf("hn0")
    assert sim.ipv4("hvbsd") == ["10.0.0.4"] and sim.ipv4("stock") == []

    # migrate: a VF with another name comes back and joins lagg0
    sim.kernel.attach_vf("hn0", "mce1")
    sim.ifconfig("lagg0", "laggport", "mce1")
    assert sim.ipv4("hvbsd") == ["10.0.0.4"] and sim.ipv4("stock") == []
    assert "2001:db8::4" in sim.seen("hvbsd")


def test_the_auto_pool_reports_the_simulated_freebsd(sim) -> None:
    code, text = host.command(sim.drivers["hvbsd"], ["enum", "auto"], limit=20)
    assert code == 0
    values = dict(line.split("=", 1) for line in text.splitlines())
    assert values["OSName"] == "FreeBSD"
    assert values["FullyQualifiedDomainName"] == "sim-guest"
    assert values["ProcessorArchitecture"] == "amd64"
    assert values["OSBuildNumber"][:2] in ("14", "15") and "-" not in values["OSBuildNumber"]
