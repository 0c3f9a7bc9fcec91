"""The lab's ``vagrant`` provider: FreeBSD boxes from the repository's Vagrantfile.

python-vagrant runs the ``vagrant`` executable in the repository root, so a
plain ``vagrant status`` there sees the same machines.  ``up`` boots the
named machines without provisioning (``vagrant up NAME --no-provision``);
``provision`` runs the Vagrantfile's provisioners (python bootstrap,
``deploy.yml``, and ``lab/lab.yml`` unless the provider is hyperv) with
``HVBSD_LAB_VARS`` set to the target's variables file.  The checks reach a
machine through the ssh config Vagrant reports, kept in
``<lab state>/vagrant/NAME.ssh-config``.  Everything Vagrant prints goes to
``<lab state>/vagrant/vagrant.log``; errors quote its last lines.

Environment: ``HVBSD_VAGRANT_PROVIDER`` (virtualbox, libvirt, hyperv, ...)
is passed to ``vagrant up --provider``; otherwise Vagrant chooses (and
honours ``VAGRANT_DEFAULT_PROVIDER``).  The Vagrantfile's own variables
(``HVBSD_BOX`` ...) pass through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from hvbsd.lab.providers import Progress, ProviderError, Target
from hvbsd.locate import data_root

NOT_INSTALLED = "vagrant is not installed; use --provider sim (the default) or install Vagrant"
TAIL_LINES = 20
LAYOUTS = ("ufs", "zfs")


def machine_names(release: str) -> list[str]:
    """The Vagrantfile's machines of one release: fbsd151-ufs, fbsd151-zfs."""
    return [f"fbsd{release.replace('.', '')}-{layout}" for layout in LAYOUTS]


def _all_machines() -> tuple[str, ...]:
    """Every machine the Vagrantfile defines (from releases.yml, as it reads it): the
    default release's first (a plain `vagrant up` starts those), then the others'."""
    from hvbsd import releases

    default = releases.default().name
    order = [default] + [name for name in releases.names() if name != default]
    return tuple(name for release in order for name in machine_names(release))


MACHINES = _all_machines()
_STEP = re.compile(r"^==> (?P<name>[\w.-]+): (?P<message>.+)$")


def _import_vagrant() -> Any:
    """python-vagrant, without the warning it logs at import when vagrant is missing."""
    logger = logging.getLogger("vagrant")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        import vagrant
    finally:
        logger.setLevel(level)
    return vagrant


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class VagrantProvider:
    """Machines of the Vagrantfile in ``root`` (the repository by default)."""

    name = "vagrant"

    def __init__(self, state_dir: Path, root: Path | None = None) -> None:
        self.state_dir = Path(state_dir) / "vagrant"
        self.root = Path(root or os.environ.get("HVBSD_VAGRANT_ROOT") or data_root()).resolve()
        self.log_path = self.state_dir / "vagrant.log"
        self.vagrant_provider = os.environ.get("HVBSD_VAGRANT_PROVIDER") or None

    # -- helpers -------------------------------------------------------------------------

    def _log_cm(self) -> contextlib.AbstractContextManager[IO[str]]:
        return open(self.log_path, "a", encoding="utf-8")

    def _vagrant(self, variables_file: Path | None = None) -> Any:
        if not (self.root / "Vagrantfile").is_file():
            raise ProviderError(f"no Vagrantfile in {self.root}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, VAGRANT_NO_COLOR="1")
        if variables_file is not None:
            env["HVBSD_LAB_VARS"] = str(variables_file)
        vagrant = _import_vagrant()
        return vagrant.Vagrant(root=str(self.root), quiet_stdout=False, quiet_stderr=False,
                               env=env, out_cm=self._log_cm, err_cm=self._log_cm)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _tail(self, since: int) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(since)
                text = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no output)"
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-TAIL_LINES:]) or "(no output)"

    @contextlib.contextmanager
    def _command(self, what: str) -> Iterator[None]:
        """Run vagrant commands, turning their failures into ProviderErrors."""
        since = self._log_size()
        try:
            yield
        except RuntimeError as error:
            if "cannot be found" in str(error) or "not found" in str(error).lower():
                raise ProviderError(NOT_INSTALLED) from None
            raise
        except FileNotFoundError:
            raise ProviderError(NOT_INSTALLED) from None
        except OSError as error:
            raise ProviderError(f"{what}: cannot run vagrant: {error}") from None
        except subprocess.CalledProcessError as error:
            raise ProviderError(
                f"{what} failed (exit {error.returncode}); last lines of its output"
                f" (all of it in {self.log_path}):\n{self._tail(since)}") from None

    def _stream(self, lines: Iterable[str], name: str | None, progress: Progress) -> None:
        """Copy streamed stdout to the log; report Vagrant's ``==> NAME:`` steps
        (of machine ``name``, or of every machine when None)."""
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in lines:
                log.write(line if line.endswith("\n") else line + "\n")
                log.flush()
                match = _STEP.match(line.rstrip())
                if match and name in (None, match["name"]):
                    progress(match["name"], match["message"])

    def machines(self, v: Any = None) -> list[tuple[str, str]]:
        """(name, state) of every machine the Vagrantfile defines."""
        v = v or self._vagrant()
        with self._command("vagrant status"):
            statuses = v.status()
        return [(status.name, status.state) for status in statuses if status.name]

    def default_guests(self, count: int, release: str) -> list[str]:
        """The first ``count`` machines of ``release`` in the Vagrantfile (``--guests N``)."""
        names = machine_names(release)
        if count > len(names):
            raise ProviderError(f"the Vagrantfile defines {len(names)} machines of FreeBSD"
                                f" {release} ({', '.join(names)}); {count} asked for")
        return names[:count]

    def ssh_config_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.ssh-config"

    def _target(self, v: Any, name: str, variables_file: Path) -> Target:
        with self._command(f"vagrant ssh-config {name}"):
            text = v.ssh_config(vm_name=name)
        if not re.search(r"^\s*HostName\s+\S", text, re.MULTILINE):
            raise ProviderError(f"vagrant ssh-config {name}: no HostName in its answer"
                                f" (is the machine running?):\n{text.strip() or '(nothing)'}")
        path = self.ssh_config_path(name)
        _atomic_write(path, text if text.endswith("\n") else text + "\n")
        spec = f"ssh://{name}?ssh_config={quote(str(path), safe='/')}&sudo=true"
        return Target(name=name, hosts_spec=spec, variables_file=variables_file,
                      provider=self.name)

    # -- the Provider protocol -----------------------------------------------------------

    def up(self, guests: list[str], variables_file: Path, progress: Progress,
           release: str = "") -> list[Target]:
        """Boot ``guests`` (all autostart machines when empty), not provisioned yet.
        The machines' names say their release; ``release`` only chose them."""
        variables_file = Path(variables_file).resolve()
        if not variables_file.is_file():
            raise ProviderError(f"vars file {variables_file}: no such file")
        v = self._vagrant(variables_file)
        known = [name for name, _state in self.machines(v)]
        unknown = [name for name in guests if name not in known]
        if unknown:
            raise ProviderError(
                f"unknown Vagrant machine(s) {', '.join(unknown)}; the Vagrantfile defines: "
                f"{', '.join(known) or '(none)'}")
        if guests:
            names = list(dict.fromkeys(guests))
            for name in names:
                progress(name, "vagrant up")
                with self._command(f"vagrant up {name}"):
                    self._stream(self._up(v, name), name, progress)
        else:
            progress("", "vagrant up (the Vagrantfile's autostart machines)")
            with self._command("vagrant up"):
                self._stream(self._up(v, None), None, progress)
            names = [name for name, state in self.machines(v) if state == "running"]
        targets = []
        for name in names:
            targets.append(self._target(v, name, variables_file))
            progress(name, "up")
        return targets

    def _up(self, v: Any, name: str | None) -> Iterable[str]:
        lines: Iterable[str] = v.up(vm_name=name, provision=False,
                                    provider=self.vagrant_provider, stream_output=True)
        return lines

    def provision(self, targets: list[Target], progress: Progress) -> None:
        """The Vagrantfile's provisioners, one machine after the other."""
        for target in targets:
            v = self._vagrant(Path(target.variables_file).resolve())
            progress(target.name, f"vagrant provision (output in {self.log_path})")
            with self._command(f"vagrant provision {target.name}"):
                v.provision(vm_name=target.name)
            progress(target.name, "provisioned")

    def status(self) -> list[tuple[str, str]]:
        return self.machines()

    def down(self, progress: Progress) -> None:
        """``vagrant destroy --force``: every machine of the Vagrantfile."""
        v = self._vagrant()
        progress("", "vagrant destroy")
        with self._command("vagrant destroy"):
            v.destroy()
        for path in self.state_dir.glob("*.ssh-config"):
            path.unlink(missing_ok=True)
        progress("", "destroyed")

