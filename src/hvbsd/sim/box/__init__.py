"""The FreeBSD-box personality: inside a real FreeBSD (Vagrant) box, only Hyper-V is simulated.

Interfaces are real: each hn and each VF is one end of an epair(4), renamed
(``hn0``, ``mce0``) and given the hn's MAC; the other ends join a bridge,
where a vnet jail is the peer on the "host network".  ifconfig, lagg(4),
dhclient and rc are FreeBSD's own.  What FreeBSD cannot do without hn(4) is
simulated here: the hn sysctls (a ``sysctl`` shim first on the PATH of the
actions hvbsd dispatches answers ``hw.hn.*``, ``dev.hn.*`` and
``kern.vm_guest`` from ``sysctl.state``), the hn's link dropping while its VF
carries the datapath, and the events only hn(4) sends (HYPERV_NIC_VF, the
hn's LINK_UP/LINK_DOWN) plus the VF's arrival under its final name.  Events
about other interfaces (a lagg the scripts create...) come from the real
kernel to the real devd, so they are not dispatched twice.

The scenarios and the dispatching are ``hvbsd.sim.hyperv_nic``'s, shared with
the Linux personality; only the standard library is used.  Run as
``python3 -m hvbsd.sim.box setup|vf|migrate|nic`` (lab/lab.yml installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from hvbsd.sim.hyperv_nic import IfView, NetView, NicError, next_vf_name

STATE_ENV = "HVBSD_BOX_STATE"
PATH_ENV = "HVBSD_BOX_PATH"  # where the box's FreeBSD commands are found
DEFAULT_STATE = "/var/run/hvbsd-box"
BRIDGE = "hvbsdbr0"
JAIL = "hvbsd-host"
HOST_ADDRESS = "10.0.0.1/24"
COMMAND_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
SHIM = Path(__file__).resolve().parent / "sysctl.sh"
_HEADER = re.compile(r"^([^\s:]+): flags=[0-9a-f]+<([^>]*)>")


def parse_ifconfig(text: str) -> dict[str, dict[str, Any]]:
    """FreeBSD's ``ifconfig -a`` output: per interface its flags, ether, status, lagg ports."""
    found: dict[str, dict[str, Any]] = {}
    current: Optional[dict[str, Any]] = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = {"flags": [f for f in header.group(2).split(",") if f], "ether": None,
                       "status": None, "ports": [], "lagg": False}
            found[header.group(1)] = current
            continue
        if current is None or not line.startswith("\t"):
            continue
        words = line.split()
        if not words:
            continue
        if words[0] == "ether" and len(words) > 1:
            current["ether"] = words[1]
        elif words[0] == "status:":
            current["status"] = " ".join(words[1:])
        elif words[0] == "laggproto":
            current["lagg"] = True
        elif words[0] == "laggport:" and len(words) > 1:
            current["ports"].append(words[1])
    return found


class BoxNics:
    """The simulated Hyper-V NICs of the FreeBSD box this runs on."""

    def __init__(self, state_dir: Optional[str] = None, *, root: str = "/",
                 command_path: Optional[str] = None) -> None:
        self.state_dir = Path(state_dir or os.environ.get(STATE_ENV) or DEFAULT_STATE)
        self.log_dir = self.state_dir
        self.label = os.uname().nodename.split(".")[0] or "box"
        self.root = root
        self.command_path = command_path or os.environ.get(PATH_ENV) or COMMAND_PATH
        self.state_path = self.state_dir / "box.json"
        self.sysctl_path = self.state_dir / "sysctl.state"
        self.bin_dir = self.state_dir / "bin"

    # -- the box's own state ------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NicError(f"{self.state_path}: not set up (run: python3 -m hvbsd.sim.box "
                           "setup)") from None
        return loaded

    def save(self, state: dict[str, Any]) -> None:
        self._atomic(self.state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")

    @staticmethod
    def _atomic(path: Path, text: str) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)

    def run(self, *argv: str) -> str:
        """One FreeBSD command; its stdout.  A failure is the scenario's failure."""
        result = subprocess.run(list(argv), env={"PATH": self.command_path}, text=True,
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise NicError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
        return result.stdout

    # -- setup ------------------------------------------------------------------------------

    def setup(self, nics: int = 1) -> list[str]:
        """Bridge, host jail and hn NICs; idempotent.  Returns what was created."""
        from hvbsd.sim.kernel import read_loader_settings

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.bin_dir.mkdir(exist_ok=True)
        shim = self.bin_dir / "sysctl"
        shutil.copyfile(SHIM, shim)
        shim.chmod(0o755)
        try:
            state = self.load()
        except NicError:
            state = {"nics": {}, "peers": {}, "jail": None}
        loader = read_loader_settings(Path(self.root) / "boot")
        state["transparent"] = 0 if loader.get("hw.hn.vf_transparent", "1") == "0" else 1
        state["attwait"] = 2
        created: list[str] = []
        present = parse_ifconfig(self.run("ifconfig", "-a"))
        for module in ("if_epair", "if_bridge", "if_lagg"):
            self.run("kldload", "-n", module)
        if BRIDGE not in present:
            made = self.run("ifconfig", "bridge", "create").strip()
            self.run("ifconfig", made, "name", BRIDGE)
            self.run("ifconfig", BRIDGE, "up")
            created.append(BRIDGE)
        if not state.get("jail"):
            self.run("jail", "-c", f"name={JAIL}", "vnet", "persist")
            inside = self.run("ifconfig", "epair", "create").strip()
            outside = inside[:-1] + "b"
            self.run("ifconfig", outside, "vnet", JAIL)
            self.run("jexec", JAIL, "ifconfig", outside, "inet", HOST_ADDRESS, "up")
            self.run("ifconfig", BRIDGE, "addm", inside)
            self.run("ifconfig", inside, "up")
            state["jail"] = JAIL
            state["peers"][JAIL] = inside
            created.append(JAIL)
        for unit in range(nics):
            name = f"hn{unit}"
            if name not in state["nics"]:
                mac = _mac(f"{self.label}-{name}")
                self._port(state, name, mac)
                state["nics"][name] = {"unit": unit, "mac": mac, "link": "up", "vf": ""}
                created.append(name)
        self.save(state)
        self.view()
        return created

    def _port(self, state: dict[str, Any], name: str, mac: str) -> None:
        """An epair whose 'a' end becomes ``name`` with ``mac``; 'b' joins the bridge."""
        end = self.run("ifconfig", "epair", "create").strip()
        peer = end[:-1] + "b"
        self.run("ifconfig", end, "name", name)
        self.run("ifconfig", name, "ether", mac)
        self.run("ifconfig", BRIDGE, "addm", peer)
        self.run("ifconfig", peer, "up")
        state["peers"][name] = peer

    # -- Nics ----------------------------------------------------------------------------------

    def view(self) -> NetView:
        state = self.load()
        shown = parse_ifconfig(self.run("ifconfig", "-a"))
        hidden = {BRIDGE, *state["peers"].values()}
        vfs = {nic["vf"]: hn for hn, nic in state["nics"].items() if nic["vf"]}
        view: NetView = {}
        for name, info in shown.items():
            if name in hidden:
                continue
            up = "UP" in info["flags"]
            active = info["status"] == "active"
            vf = rxvf = ""
            if "LOOPBACK" in info["flags"]:
                kind, link = "loopback", "unknown"
            elif name in state["nics"]:
                kind = "hn"
                vf = state["nics"][name]["vf"]
                vf_info = shown.get(vf) if vf else None
                if vf and not state["transparent"] and vf_info and "UP" in vf_info["flags"]:
                    rxvf = vf
                link = "down" if rxvf else state["nics"][name]["link"]
            elif info["lagg"]:
                kind, link = "lagg", "up" if active else "down"
            else:
                kind = "vf" if name in vfs else "other"
                link = "up" if active and up else "down"
            view[name] = IfView(name, kind, info["ether"] is not None, up, link, vf, rxvf,
                                tuple(info["ports"]))
        self._write_sysctls(state, view)
        return view

    def simulated(self, line: str, before: NetView, after: NetView) -> bool:
        """Events about hn and VF interfaces are simulated; the real kernel sends the rest."""
        subsystem = line.split("subsystem=", 1)[1].split(" ", 1)[0]
        for view in (before, after):
            found = view.get(subsystem)
            if found is not None and found.kind in ("hn", "vf"):
                return True
        return False

    def _write_sysctls(self, state: dict[str, Any], view: NetView) -> None:
        lines = ["kern.vm_guest=hv", f"hw.hn.vf_transparent={state['transparent']}",
                 f"hw.hn.vf_xpnt_attwait={state['attwait']}"]
        vflist = []
        for name, nic in sorted(state["nics"].items()):
            unit = nic["unit"]
            vf = nic["vf"]
            rxvf = view[name].rxvf if name in view else ""
            lines += [f"dev.hn.{unit}.vf={vf}", f"dev.hn.{unit}.rxvf={rxvf}",
                      f"dev.hn.{unit}.vf_xpnt_enabled={1 if state['transparent'] and vf else 0}"]
            if vf:
                vflist.append(vf)
        lines.append(f"hw.hn.vflist={' '.join(vflist)}")
        text = "\n".join(lines) + "\n"
        try:
            if self.sysctl_path.read_text(encoding="utf-8") == text:
                return
        except FileNotFoundError:
            pass
        self._atomic(self.sysctl_path, text)

    def attach_vf(self, hn: str, vf: str) -> None:
        state = self.load()
        self._port(state, vf, state["nics"][hn]["mac"])
        state["nics"][hn]["vf"] = vf
        self.save(state)

    def detach_vf(self, hn: str) -> Optional[str]:
        state = self.load()
        vf = state["nics"][hn]["vf"]
        if vf:
            self.run("ifconfig", vf, "destroy")  # both ends go; lagg drops the port
            state["peers"].pop(vf, None)
        state["nics"][hn]["vf"] = ""
        self.save(state)
        return vf or None

    def add_nic(self) -> str:
        state = self.load()
        unit = 0
        while f"hn{unit}" in state["nics"]:
            unit += 1
        name = f"hn{unit}"
        mac = _mac(f"{self.label}-{name}")
        self._port(state, name, mac)
        state["nics"][name] = {"unit": unit, "mac": mac, "link": "up", "vf": ""}
        self.save(state)
        return name

    def hn_link(self, hn: str) -> str:
        return str(self.load()["nics"][hn]["link"])

    def set_hn_link(self, hn: str, link: str) -> None:
        state = self.load()
        state["nics"][hn]["link"] = link
        self.save(state)

    def raise_vf(self, vf: str) -> None:
        self.run("ifconfig", vf, "up")

    def transparent(self) -> bool:
        return bool(self.load()["transparent"])

    def xpnt_attwait(self) -> float:
        return float(self.load()["attwait"])

    def vf_delay(self) -> int:
        shown = subprocess.run(
            ["/bin/sh", "-c", '. /etc/rc.subr; load_rc_config netif; echo "$hyperv_vf_delay"'],
            env={"PATH": self.command_path}, text=True, capture_output=True, check=False,
        ).stdout.strip()
        return max(2, int(shown)) if shown.isdigit() else 2

    def dispatch(self, line: str, quoting: str) -> Any:
        """devd's way, with the box's installed rules and the shim first on PATH."""
        from hvbsd.devd import Dispatcher, load_tree
        from hvbsd.devd.dispatch import DEVD_PATH, devd_shell

        shell = devd_shell()
        env = {"PATH": f"{self.bin_dir}:{DEVD_PATH}",
               "HVBSD_BOX_SYSCTLS": str(self.sysctl_path)}

        def run(command: str) -> int:
            done = subprocess.run([*shell, "-c", command], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  close_fds=True, check=False)
            return int(done.returncode)

        record = Dispatcher(load_tree(self.root), run=run, quoting=quoting).dispatch(line)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.started))
        with open(self.state_dir / "devd.log", "a", encoding="utf-8") as log:
            log.write(f"{stamp} {record.describe()}\n")
        return record


def _mac(seed: str) -> str:
    from hvbsd.sim.kernel import mac_for

    return mac_for(seed)


__all__ = ["BoxNics", "next_vf_name", "parse_ifconfig"]
