"""The simulated Hyper-V host as the lab's checks see it, whichever provider made the host.

``for_host(host)`` picks the implementation from testinfra's backend:

- ``hvbsd-sim://`` guests: hvbsd's simulator APIs on the controller
  (``hvbsd.sim.host.backup``, ``hvbsd.sim.host.kvp``, ``hvbsd.sim.hyperv_nic``);
- any other host (a FreeBSD box of the vagrant provider): ``hvbsd-box ...``
  on the target through ``host.run`` (installed by ``lab/lab.yml``).

Every scenario is also written as one JSON file into the timeline directory,
when one is given; ``hvbsd.lab.report`` draws the timelines from them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any, Optional


class Unsupported(Exception):
    """The host cannot play this scenario (e.g. no backup verb in hvbsd-box)."""


class ScenarioError(Exception):
    """The scenario could not be played (bad state, the host failed)."""


class HypervHost:
    """Base: the scenarios and the timeline records."""

    kind = "?"

    def __init__(self, label: str, timeline_dir: Optional[str]) -> None:
        self.label = label
        self.timeline_dir = Path(timeline_dir) if timeline_dir else None
        self.count = 0

    # scenarios ---------------------------------------------------------------------

    def backup(self) -> dict[str, Any]:
        began = time.time()
        result = self._backup()
        self._record("backup", "backup", began, result, self._host_log(began))
        return result

    def vf_attach(self, hn: str) -> dict[str, Any]:
        return self._nic("vf attach", ["vf", "attach", hn])

    def vf_detach(self, hn: str) -> dict[str, Any]:
        return self._nic("vf detach", ["vf", "detach", hn])

    def migrate(self, hn: str) -> dict[str, Any]:
        return self._nic("migrate", ["migrate", hn])

    def kvp_ip(self, mac: str) -> dict[str, list[str]]:
        """The host's KVP view of the adapter with MAC ``mac`` (GET_IP_INFO, what
        Hyper-V Manager shows): ``addresses``, ``subnets``, ``gateways``, ``dns``
        as lists, ``dhcp`` as ["enabled"] or ["disabled"]."""
        return parse_kvp_ip(self._kvp(["ip", mac]))

    def _kvp(self, argv: list[str]) -> str:
        raise NotImplementedError

    def _nic(self, label: str, argv: list[str]) -> dict[str, Any]:
        began = time.time()
        result = self._play(argv)
        self._record(label, "nic", began, result, [])
        return result

    # implementations -------------------------------------------------------------------

    def _backup(self) -> dict[str, Any]:
        raise NotImplementedError

    def _play(self, argv: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _host_log(self, since: float) -> list[str]:
        return []

    # timeline ----------------------------------------------------------------------------

    def _record(self, label: str, kind: str, began: float, result: dict[str, Any],
                host_log: list[str]) -> None:
        if self.timeline_dir is None:
            return
        self.count += 1
        record = {"target": self.label, "scenario": result.get("scenario", label), "kind": kind,
                  "provider": self.kind, "started": began, "ended": time.time(),
                  "result": result, "host_log": host_log}
        self.timeline_dir.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")
        path = self.timeline_dir / f"{self.count:02d}-{slug}.json"
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(temporary, path)


class SimHyperv(HypervHost):
    """A simulated guest: the simulator's host APIs, called on the controller."""

    kind = "sim"

    def __init__(self, guest: Any, timeline_dir: Optional[str]) -> None:
        super().__init__(guest.name, timeline_dir)
        self.guest = guest

    def _backup(self) -> dict[str, Any]:
        from hvbsd.sim import host

        return host.backup(self.guest)

    def _kvp(self, argv: list[str]) -> str:
        from hvbsd.sim import host

        host.start(self.guest)
        reply = host.kvp(self.guest, argv)
        if reply["status"] != 0:
            raise ScenarioError(f"hvbsd sim kvp {self.guest.name} {' '.join(argv)}: "
                                f"{reply.get('text') or 'failed'}")
        return str(reply.get("text", ""))

    def _play(self, argv: list[str]) -> dict[str, Any]:
        from hvbsd.sim import hyperv_nic as nic

        nics = nic.GuestNics(self.guest)
        try:
            if argv[:2] == ["vf", "attach"]:
                result = nic.vf_attach(nics, argv[2])
            elif argv[:2] == ["vf", "detach"]:
                result = nic.vf_detach(nics, argv[2])
            elif argv[0] == "migrate":
                result = nic.migrate(nics, argv[1])
            else:
                raise ScenarioError(f"unknown scenario {argv}")
        except nic.NicError as error:
            raise ScenarioError(str(error)) from None
        return result.as_dict()

    def _host_log(self, since: float) -> list[str]:
        """Lines of the VSS host's log (``<state>/host.log``) written since ``since``."""
        from hvbsd.sim.host import LOGFILE

        path = self.guest.state_dir / LOGFILE
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        kept = []
        for line in lines:
            stamp = _log_time(line)
            if stamp is not None and stamp >= since - 0.5:
                kept.append(line)
        return kept


class BoxHyperv(HypervHost):
    """A FreeBSD box: ``hvbsd-box`` on the target (root, or through sudo)."""

    kind = "box"

    def __init__(self, host: Any, label: str, timeline_dir: Optional[str]) -> None:
        super().__init__(label, timeline_dir)
        self.host = host
        self._prefix: Optional[str] = None

    def _command(self, argv: list[str]) -> str:
        if self._prefix is None:
            uid = self.host.run("id -u").stdout.strip()
            self._prefix = "hvbsd-box" if uid == "0" else "sudo -n hvbsd-box"
        return " ".join([self._prefix, *map(shlex.quote, argv)])

    def _verbs(self) -> str:
        found = self.host.run(self._command(["--help"]))
        if found.rc != 0:
            raise ScenarioError(f"hvbsd-box is not usable on {self.label}: "
                                f"{found.stderr.strip() or found.stdout.strip()}"
                                " (lab/lab.yml installs it)")
        return str(found.stdout)

    def _json(self, argv: list[str]) -> dict[str, Any]:
        ran = self.host.run(self._command(argv))
        try:
            loaded: dict[str, Any] = json.loads(ran.stdout)
        except ValueError:
            raise ScenarioError(f"hvbsd-box {' '.join(argv)} (exit {ran.rc}): "
                                f"{ran.stderr.strip() or ran.stdout.strip()}") from None
        return loaded

    def _backup(self) -> dict[str, Any]:
        if not re.search(r"\bbackup\b", self._verbs()):
            raise Unsupported("hvbsd-box has no backup verb: the simulated VSS host is not"
                              " installed in boxes, so backups are checked on sim guests only")
        return self._json(["backup"])

    def _play(self, argv: list[str]) -> dict[str, Any]:
        return self._json([*argv, "--json"])

    def _kvp(self, argv: list[str]) -> str:
        raise Unsupported("hvbsd-box has no KVP host: the host's view of the guest's"
                          " addresses is checked on sim guests only")


def parse_kvp_ip(text: str) -> dict[str, list[str]]:
    """``hvbsd sim kvp GUEST ip MAC``'s lines (``addresses: a;b;``) as lists."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        found[key.strip()] = [entry for entry in value.split(";") if entry]
    return found


def _log_time(line: str) -> Optional[float]:
    """Epoch seconds of a ``2026-11-22 04:52:58,459 ...`` log line (local time)."""
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", line)
    if not match:
        return None
    whole = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
    return whole + int(match.group(2)) / 1000.0


def for_host(host: Any, timeline_dir: Optional[str] = None) -> HypervHost:
    """The implementation for a testinfra host."""
    backend = host.backend
    if getattr(backend, "NAME", "") == "hvbsd-sim":
        return SimHyperv(backend.guest, timeline_dir)
    return BoxHyperv(host, str(getattr(backend, "hostname", "box")), timeline_dir)
