"""dhclient(8) of FreeBSD 14 against the simulated host network.

The lease comes from the host network's DHCP range, keyed by the
interface's MAC address; the address is set on the interface in the kernel
state.  Afterwards dhclient stays in the background (pidfile
``/var/run/dhclient/dhclient.<if>.pid``, locked; a second one is refused
with ``dhclient already running, pid: N.``).  ``-b`` goes to the background
at once.  Like FreeBSD's, it exits on SIGTERM, when the interface is taken
down (``Interface hn0 is down, dhclient exiting``), when its address is
deleted (``My address (A) was deleted, dhclient exiting``) and when the
interface departs; a link going down only pauses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import sys
import time
from typing import Optional

from hvbsd.sim.freebsd._common import (
    GetOpt,
    UsageError,
    append_syslog,
    detach,
    exec_titled,
    forget_titled_exec,
    kernel,
    set_process_name,
    stdio_to_devnull,
    syslog_line,
)
from hvbsd.sim.kernel import InetAddress, KernelError, State

PROGRAM = "dhclient"
PIDFILE = "/var/run/dhclient/dhclient.{}.pid"
USAGE = "usage: dhclient [-bdqu] [-c conffile] [-l leasefile] [-p pidfile] interface\n"
POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LINK_WAIT_SECONDS = 10


class Client:
    def __init__(self, interface: str, pidfile: str) -> None:
        self.interface = interface
        self.pidfile = pidfile
        self.pidfile_fd: Optional[int] = None
        self.address: Optional[str] = None
        self.stopping = False
        self.hostname = "freebsd"
        self.in_background = False

    def log(self, message: str) -> None:
        """note()/warning(): syslog, and stderr while still in the foreground."""
        append_syslog([syslog_line(PROGRAM, message, self.hostname, os.getpid())])
        if not self.in_background:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    def lock_pidfile(self) -> bool:
        os.makedirs(os.path.dirname(self.pidfile), exist_ok=True)
        fd = os.open(self.pidfile, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "0"
            os.close(fd)
            sys.stderr.write(f"{PROGRAM} already running, pid: {other}.\n")
            return False
        self.pidfile_fd = fd
        return True

    def write_pid(self) -> None:
        if self.pidfile_fd is not None:
            os.ftruncate(self.pidfile_fd, 0)
            os.lseek(self.pidfile_fd, 0, os.SEEK_SET)
            os.write(self.pidfile_fd, f"{os.getpid()}\n".encode())

    def remove_pidfile(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pidfile)

    def background(self, bound: bool) -> None:
        """go_daemon(): detach, stdio to /dev/null, record our pid, take FreeBSD's title.

        The detached process re-executes itself with argv[0] ``dhclient: IF``
        (setproctitle's result on FreeBSD), which rc.subr's process matching
        for ``procname=/sbin/dhclient`` relies on.
        """
        # The caller returns once the re-executed process is titled and has written
        # its pidfile (FreeBSD's go_daemon gets there at once; a re-exec does not).
        ready_write = detach()
        os.set_inheritable(ready_write, True)
        stdio_to_devnull()
        self.in_background = True
        # The pid is written after the re-exec, once the process has its title.
        assert self.pidfile_fd is not None
        os.set_inheritable(self.pidfile_fd, True)
        resume = {
            "interface": self.interface,
            "pidfile": self.pidfile,
            "pidfile_fd": self.pidfile_fd,
            "address": self.address,
            "hostname": self.hostname,
            "bound": bound,
            "ready_fd": ready_write,
        }
        # Signals wait until the re-executed process has its handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        exec_titled(f"{PROGRAM}: {self.interface}", __name__, json.dumps(resume))

    def wait_for_link(self) -> bool:
        state = kernel().snapshot()
        if state.link_of(state.interface(self.interface)) == "up":
            return True
        sys.stderr.write(f"{self.interface}: no link ...")
        sys.stderr.flush()
        for _attempt in range(LINK_WAIT_SECONDS):
            time.sleep(1)
            state = kernel().snapshot()
            if state.link_of(state.interface(self.interface)) == "up":
                sys.stderr.write(" got link\n")
                return True
            sys.stderr.write(".")
            sys.stderr.flush()
        sys.stderr.write(" giving up\n")
        return False

    def bind(self) -> None:
        """DHCPDISCOVER..DHCPACK against the host network, then configure the address."""
        with kernel().transaction() as state:
            interface = state.interface(self.interface)
            mac = interface.ether or interface.hwaddr or ""
            lease = state.network.lease_for(mac, state.hostname)
            network = ipaddress.IPv4Network(state.network.subnet, strict=False)
            interface.inet = [a for a in interface.inet if a.address != lease.address]
            interface.inet.insert(
                0,
                InetAddress(lease.address, network.prefixlen, str(network.broadcast_address)),
            )
            if "UP" not in interface.flags:
                interface.flags.append("UP")
            gateway = state.network.gateway
        self.address = lease.address
        self.log(f"DHCPREQUEST on {self.interface} to 255.255.255.255 port 67")
        self.log(f"DHCPACK from {gateway}")
        self.log(f"bound to {lease.address} -- renewal in 43200 seconds.")

    def watch(self) -> int:
        """Stay bound until told to stop or the interface says so."""
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            try:
                state = kernel().snapshot()
            except KernelError:
                continue
            verdict = self.check(state)
            if verdict is not None:
                self.log(verdict)
                self.log("exiting.")
                return 1
        self.log("exiting.")
        return 0

    def check(self, state: State) -> Optional[str]:
        interface = state.find(self.interface)
        if interface is None:
            return f"Interface {self.interface} is gone, dhclient exiting"
        if not interface.is_up:
            return f"Interface {self.interface} is down, dhclient exiting"
        if self.address and all(a.address != self.address for a in interface.inet):
            return f"My address ({self.address}) was deleted, dhclient exiting"
        return None

    def on_signal(self, _number: int, _frame: object) -> None:
        self.stopping = True


def main(argv: list[str]) -> int:
    background_now = False
    pidfile: Optional[str] = None
    options = GetOpt(argv, "bc:dl:p:qu", double_dash=False)
    try:
        for letter, value in options:
            if letter == "p":
                pidfile = value
            elif letter == "b":
                background_now = True
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1, name_missing=False)
    rest = options.operands
    if len(rest) != 1:
        sys.stderr.write(USAGE)
        return 1
    name = rest[0]
    state = kernel().snapshot()
    if state.find(name) is None:
        sys.stderr.write(f"{PROGRAM}: {name}: not found\n")
        return 1
    client = Client(name, pidfile or PIDFILE.format(name))
    client.hostname = state.hostname
    if not client.lock_pidfile():
        return 1
    if background_now:
        client.background(bound=False)
    if not client.wait_for_link():
        client.remove_pidfile()
        return 1
    client.bind()
    client.background(bound=True)
    return 1  # not reached: background() execs


def resume(argv: list[str]) -> int:
    """The detached dhclient, after its re-exec under FreeBSD's title."""
    forget_titled_exec()
    saved = json.loads(argv[0])
    client = Client(saved["interface"], saved["pidfile"])
    client.pidfile_fd = saved["pidfile_fd"]
    client.address = saved["address"]
    client.hostname = saved["hostname"]
    client.in_background = True
    client.write_pid()
    os.close(saved["ready_fd"])
    set_process_name(PROGRAM)
    for number in STOP_SIGNALS:
        signal.signal(number, client.on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        if not saved["bound"]:
            if not client.wait_for_link():
                return 1
            client.bind()
        return client.watch()
    finally:
        client.remove_pidfile()


if __name__ == "__main__":
    sys.exit(resume(sys.argv[1:]))
