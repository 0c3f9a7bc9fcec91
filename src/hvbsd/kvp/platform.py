"""What the daemon asks the system: interfaces, routes, OS facts, rc.conf, resolv.conf.

Everything comes from FreeBSD's own commands, which hvbsd's simulator also
provides inside a simulated guest, so the daemon runs unchanged in both:

- ``ifconfig -a``: the interfaces (:func:`hvbsd.kvp.netinfo.parse_ifconfig`);
- ``netstat -rn``: default gateways (the stock daemon's source too,
  ``kvp_get_ipconfig_info``); missing or failing, there is no gateway;
- ``sysctl -n kern.hostname kern.ostype kern.osrelease hw.machine``: what the
  stock daemon reads with gethostname(3) and uname(3) (``kvp_get_os_info``);
- ``/etc/resolv.conf`` (the stock ``hv_get_dns_info`` script reads it) and
  ``/etc/rc.conf`` (DHCP state, as rc.subr decides it).

Each command runs without a shell, with a fixed environment, for at most
``COMMAND_SECONDS``, and at most ``OUTPUT_LIMIT`` bytes of its output are read:
a slow or chatty command cannot hang the daemon past the driver's 5 s.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import List, Optional, Sequence

from hvbsd.kvp import netinfo, rcconf
from hvbsd.vss import files

COMMAND_SECONDS = 2.0
OUTPUT_LIMIT = 1 << 20
PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
RESOLV_CONF = "/etc/resolv.conf"


class CommandFailed(Exception):
    pass


@dataclass(frozen=True)
class OsInfo:
    """The AUTO pool's facts, as the stock daemon reports them."""

    hostname: str
    name: str  # uname -s
    release: str  # uname -r up to its first '-': "Win7 host expects x.y.z"
    machine: str


def run(argv: Sequence[str], timeout: float = COMMAND_SECONDS) -> str:
    """The standard output of ``argv``; CommandFailed when it cannot be had in time."""
    env = {"PATH": os.environ.get("PATH", PATH), "LC_ALL": "C"}
    for name in ("HVBSD_SIM_KERNEL_DIR", "PYTHONPATH", "HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    try:
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=env, close_fds=True,
                                   start_new_session=True)
    except OSError as exc:
        raise CommandFailed(f"{argv[0]}: {exc.strerror}") from None
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise CommandFailed(f"{argv[0]} took more than {timeout:g} s") from None
    if process.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited with status {process.returncode}")
    return output[:OUTPUT_LIMIT].decode("utf-8", errors="replace")


class Platform:
    """The system the daemon describes to the host."""

    def __init__(self, rc_conf: str = rcconf.RC_CONF, resolv_conf: str = RESOLV_CONF) -> None:
        self.rc_conf = rc_conf
        self.resolv_conf = resolv_conf

    def interfaces(self) -> List[netinfo.Interface]:
        return netinfo.parse_ifconfig(run(["ifconfig", "-a"]))

    def gateways(self, name: str) -> List[str]:
        try:
            return netinfo.parse_netstat(run(["netstat", "-rn"]), name)
        except CommandFailed:
            return []

    def dns(self) -> List[str]:
        try:
            data = files.read_bounded(self.resolv_conf, 64 * 1024)
        except OSError:
            return []
        return netinfo.parse_resolv_conf(data.decode("utf-8", errors="replace"))

    def dhcp(self, names: Sequence[str]) -> bool:
        try:
            return rcconf.dhcp_enabled(rcconf.read_lines(self.rc_conf), names)
        except OSError:
            return False

    def os_info(self) -> OsInfo:
        try:
            lines = run(["sysctl", "-n", "kern.hostname", "kern.ostype", "kern.osrelease",
                         "hw.machine"]).splitlines()
        except CommandFailed:
            lines = []
        if len(lines) < 4:
            uname = os.uname()
            lines = [uname.nodename, uname.sysname, uname.release, uname.machine]
        return OsInfo(lines[0].strip(), lines[1].strip(), lines[2].strip().split("-", 1)[0],
                      lines[3].strip())


class StaticPlatform(Platform):
    """A platform from given text (tests, benchmarks): no command runs."""

    def __init__(self, ifconfig: str, netstat: str = "", os_info: Optional[OsInfo] = None,
                 rc_conf: str = "/nonexistent/rc.conf", resolv_conf: str = "/nonexistent"
                 ) -> None:
        super().__init__(rc_conf, resolv_conf)
        self.ifconfig = ifconfig
        self.netstat = netstat
        self._os = os_info or OsInfo("guest.example", "FreeBSD", "14.5", "amd64")

    def interfaces(self) -> List[netinfo.Interface]:
        return netinfo.parse_ifconfig(self.ifconfig)

    def gateways(self, name: str) -> List[str]:
        return netinfo.parse_netstat(self.netstat, name)

    def os_info(self) -> OsInfo:
        return self._os
