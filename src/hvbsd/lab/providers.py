"""Lab providers: what brings guests up, deploys to them and takes them down.

A provider turns guest names into :class:`Target` objects, which are all the
checks (``tests/infra``) need: a testinfra ``--hosts`` value and the variables
file the guest was deployed with.  ``PROVIDERS`` maps a provider name to a
factory taking the lab's state directory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

# progress(guest, message): one line about one guest ("" = the whole lab)
Progress = Callable[[str, str], None]


class ProviderError(Exception):
    """A provider cannot do what was asked; the message says why."""


@dataclass
class Target:
    """One guest the checks run against."""

    name: str
    hosts_spec: str  # testinfra --hosts value, e.g. "hvbsd-sim://g1?state_dir=/x"
    variables_file: Path  # the hvbsd variables it was deployed with (for --hvbsd-vars)
    provider: str  # "sim" | "vagrant"


class Provider(Protocol):
    name: str

    def up(self, guests: list[str], variables_file: Path, progress: Progress,
           release: str) -> list[Target]:
        """Bring ``guests`` up running FreeBSD ``release`` (a name of releases.yml)."""

    def provision(self, targets: list[Target], progress: Progress) -> None: ...

    def status(self) -> list[tuple[str, str]]: ...

    def down(self, progress: Progress) -> None: ...


def _lazy(module: str, attribute: str, hint: str) -> Callable[[Path], Provider]:
    """A factory that imports ``module.attribute`` only when the provider is used."""

    def factory(state_dir: Path) -> Provider:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise ProviderError(
                    f"provider not available: {module} is missing ({hint})") from exc
            raise
        cls = getattr(mod, attribute, None)
        if cls is None:
            raise ProviderError(f"provider not available: {module}.{attribute} is missing ({hint})")
        return cls(state_dir)  # type: ignore[no-any-return]

    return factory


PROVIDERS: dict[str, Callable[[Path], Provider]] = {
    "sim": _lazy("hvbsd.lab.sim", "SimProvider", "simulated guests"),
    "vagrant": _lazy("hvbsd.lab.vagrant", "VagrantProvider", "Vagrant boxes"),
}


def get_provider(name: str, state_dir: Path) -> Provider:
    """The provider called ``name`` for the lab in ``state_dir``."""
    try:
        factory = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ProviderError(f"unknown provider {name!r} (known: {known})") from None
    return factory(state_dir)
