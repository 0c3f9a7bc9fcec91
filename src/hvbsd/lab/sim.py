"""The lab's ``sim`` provider: simulated FreeBSD guests, no VM.

Guests live in ``<lab state>/sim``.  ``provision`` runs the real
``ansible-playbook deploy.yml`` once for all guests (forks = number of
guests) through the ``hvbsd_sim`` connection, then reboots every guest so the
loader tunables apply, and boots what FreeBSD's rc would start: netif for the
hn interfaces of the variables, and the simulated Hyper-V host, whose VSS
devices appearing make devd start the VSS daemon.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hvbsd.lab.providers import Progress, ProviderError, Target
from hvbsd.locate import ansible_environment, data_path, data_root

PLAYBOOK = data_path("playbooks", "deploy.yml")
DEPLOY_TIMEOUT = 900.0
DAEMON_WAIT = 20.0
_HN = re.compile(r"hn(\d+)\Z")


def load_variables(path: Path) -> dict[str, Any]:
    """The variables of a vars file; a ProviderError says what is wrong with it."""
    from hvbsd.render.cli import load_vars_file

    try:
        return load_vars_file(str(path))
    except ValueError as error:
        raise ProviderError(f"vars file {error}") from None


def hn_interfaces(variables: dict[str, Any]) -> list[str]:
    names = []
    for entry in variables.get("hyperv_guest_interfaces") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and _HN.match(name):
            names.append(name)
    return names


def nic_count(variables: dict[str, Any]) -> int:
    units = [int(_HN.match(name).group(1)) for name in hn_interfaces(variables)]  # type: ignore[union-attr]
    return max(units, default=0) + 1


class SimProvider:
    """Simulated guests in ``<state_dir>/sim``."""

    name = "sim"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "sim"

    # -- helpers -------------------------------------------------------------------------

    def _guest(self, name: str) -> Any:
        from hvbsd.sim.guest import Guest

        return Guest(name, self.root)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("ANSIBLE_CONFIG", None)
        env.update(ansible_environment(self.state_dir / "collections"))
        env.update(ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", HVBSD_SIM_HOME=str(self.root),
                   ANSIBLE_LOCAL_TEMP=str(self.state_dir / "ansible-tmp"))
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.pop("HVBSD_SIM_NO_NAMESPACES", None)
        return env

    def _target(self, name: str, variables_file: Path) -> Target:
        return Target(name=name, hosts_spec=f"hvbsd-sim://{name}?state_dir={self.root}",
                      variables_file=variables_file, provider=self.name)

    # -- Provider ------------------------------------------------------------------------

    def up(self, guests: list[str], variables_file: Path, progress: Progress,
           release: str) -> list[Target]:
        from hvbsd.sim.guest import Guest, GuestError, require_namespaces

        try:
            require_namespaces()
        except GuestError as error:
            raise ProviderError(str(error)) from None
        nics = nic_count(load_variables(variables_file))
        self.root.mkdir(parents=True, exist_ok=True)
        targets = []
        for name in guests:
            guest = self._guest(name)
            try:
                if not guest.exists:
                    progress(name, "create")
                    Guest.create(name, self.root, nics=nics, release=release)
                elif guest.config.get("release") != release:
                    raise ProviderError(f"{name} exists and runs FreeBSD "
                                        f"{guest.config.get('release')}, not {release}; "
                                        "run 'hvbsd lab down' first")
                elif guest.pid is None:
                    progress(name, "start")
                    guest.start()
                progress(name, "up")
            except GuestError as error:
                raise ProviderError(f"{name}: {error}") from None
            targets.append(self._target(name, variables_file))
        return targets

    def provision(self, targets: list[Target], progress: Progress) -> None:
        if not targets:
            return
        inventory = self._inventory(targets)
        for target in targets:
            progress(target.name, "deploy")
        log = self.state_dir / "ansible.log"
        try:
            result = subprocess.run(
                [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory),
                 "--forks", str(len(targets)), str(PLAYBOOK)],
                env=self._env(), cwd=data_root(), capture_output=True, text=True,
                timeout=DEPLOY_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ProviderError(f"ansible-playbook deploy.yml: no result within "
                                f"{DEPLOY_TIMEOUT:.0f} s") from None
        log.write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ProviderError(f"ansible-playbook deploy.yml failed (exit {result.returncode}),"
                                f" full output in {log}:\n{tail}")
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            futures = [pool.submit(self._reboot, target, progress) for target in targets]
            errors = [str(error) for future in futures
                      if (error := future.exception()) is not None]
        if errors:
            raise ProviderError("; ".join(errors))

    def _inventory(self, targets: list[Target]) -> Path:
        hosts = {}
        for target in targets:
            variables = load_variables(target.variables_file)
            hosts[target.name] = {**variables, "ansible_connection": "hvbsd_sim",
                                  "ansible_hvbsd_sim_state_dir": str(self.root)}
        inventory = self.state_dir / "inventory.json"
        _atomic_write(inventory, json.dumps({"all": {"hosts": hosts}}, indent=1))
        return inventory

    def _reboot(self, target: Target, progress: Progress) -> None:
        """Stop and start the guest, then what FreeBSD's rc would start."""
        from hvbsd.sim import host
        from hvbsd.sim.guest import GuestError

        guest = self._guest(target.name)
        variables = load_variables(target.variables_file)
        progress(target.name, "reboot")
        try:
            if guest.pid is not None:
                guest.stop()
            guest.start()
            for hn in hn_interfaces(variables):
                booted = guest.exec(["/etc/rc.d/netif", "start", hn], text=True, timeout=60)
                if booted.returncode != 0:
                    raise ProviderError(f"{target.name}: netif start {hn} failed: "
                                        f"{(booted.stdout + booted.stderr).strip()}")
            # rc.d/devd after netif: devd reads the boot's LINK_UP events
            guest.boot_devd()
            host.start(guest)
        except GuestError as error:
            raise ProviderError(f"{target.name}: {error}") from None
        wants_daemon = (variables.get("hyperv_vss_enable", True)
                        and variables.get("hyperv_guest_vss_daemon", "hvbsd") == "hvbsd")
        if wants_daemon:
            progress(target.name, "daemon")
            deadline = time.monotonic() + DAEMON_WAIT
            while guest.exec(["service", "hvbsd_vssd", "onestatus"]).returncode != 0:
                if time.monotonic() > deadline:
                    raise ProviderError(f"{target.name}: hvbsd_vssd not running "
                                        f"{DAEMON_WAIT:.0f} s after boot")
                time.sleep(0.2)
        progress(target.name, "ready")

    def status(self) -> list[tuple[str, str]]:
        from hvbsd.sim.guest import list_guests

        if not self.root.is_dir():
            return []
        return [(guest.name, guest.status) for guest in list_guests(self.root)]

    def down(self, progress: Progress) -> None:
        from hvbsd.sim.guest import GuestError, list_guests

        errors = []
        if self.root.is_dir():
            for guest in list_guests(self.root):
                progress(guest.name, "destroy")
                try:
                    guest.destroy()
                    progress(guest.name, "gone")
                except GuestError as error:
                    errors.append(f"{guest.name}: {error}")
        if errors:
            raise ProviderError("; ".join(errors))
        for leftover in ("inventory.json", "ansible.log"):
            (self.state_dir / leftover).unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / "ansible-tmp", ignore_errors=True)
        if self.root.is_dir():
            shutil.rmtree(self.root)


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
