"""The FreeBSD releases hvbsd supports, read from ``releases.yml``.

That file is the one list: the roles' metadata and the README's support
table are generated from it (``python -m hvbsd.render.docs``), the
Vagrantfile reads it, and the simulator builds a guest of any release in it
(``--release``). Per release it records what differs between FreeBSD
releases and matters here: the devd ``vm_guest`` variable, the stock files,
``kern.osreldate`` and the Vagrant boxes.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Mapping

from hvbsd.locate import data_path

RELEASE_NAME = re.compile(r"[1-9][0-9]\.[0-9]{1,2}")


class UnknownRelease(ValueError):
    """A release hvbsd does not support (or not a release name at all)."""


@dataclass(frozen=True)
class Release:
    name: str  # "14.5"
    eol: datetime.date
    osreldate: int
    devd_vm_guest: bool
    stock: str
    boxes: Mapping[str, str]
    galaxy: bool = True  # Galaxy's platform list knows it (see releases.yml)

    @property
    def major(self) -> int:
        return int(self.name.split(".")[0])

    @property
    def osrelease(self) -> str:
        """kern.osrelease, what ``uname -r`` and ``freebsd-version`` print."""
        return f"{self.name}-RELEASE"

    @property
    def version_string(self) -> str:
        """kern.version's first line, as a GENERIC kernel of the release reads."""
        return f"FreeBSD {self.osrelease} releng/{self.name} GENERIC"

    def box(self, provider: str) -> str:
        return self.boxes.get(provider, self.boxes["default"])


def _release(entry: Mapping[str, Any]) -> Release:
    name = entry["release"]
    if not isinstance(name, str) or not RELEASE_NAME.fullmatch(name):
        raise ValueError(f"releases.yml: bad release name {name!r}")
    boxes = entry["boxes"]
    if "default" not in boxes:
        raise ValueError(f"releases.yml: release {name} has no default box")
    return Release(
        name=name,
        eol=datetime.date.fromisoformat(entry["eol"]),
        osreldate=int(entry["osreldate"]),
        devd_vm_guest=bool(entry["devd_vm_guest"]),
        stock=str(entry["stock"]),
        boxes=dict(boxes),
        galaxy=bool(entry.get("galaxy", True)),
    )


@cache
def _matrix() -> tuple[tuple[Release, ...], str]:
    import yaml

    document = yaml.safe_load(data_path("releases.yml").read_text(encoding="utf-8"))
    releases = tuple(_release(entry) for entry in document["releases"])
    names = [release.name for release in releases]
    if len(set(names)) != len(names) or document["default"] not in names:
        raise ValueError("releases.yml: duplicate releases, or the default is not listed")
    return tuple(sorted(releases, key=lambda r: tuple(map(int, r.name.split("."))))), document[
        "default"]


def supported() -> tuple[Release, ...]:
    """Every supported release, oldest first."""
    return _matrix()[0]


def names() -> tuple[str, ...]:
    return tuple(release.name for release in supported())


def get(name: object) -> Release:
    """The release called ``name``; UnknownRelease (one line, with the choices) otherwise."""
    for release in supported():
        if release.name == name:
            return release
    shown = repr(name)[:40]
    raise UnknownRelease(f"release {shown}: hvbsd supports FreeBSD {', '.join(names())}")


def default() -> Release:
    return get(_matrix()[1])


def oldest() -> Release:
    return supported()[0]


def newest_per_major() -> tuple[Release, ...]:
    """The newest release of each major version (what CI runs the lab on)."""
    newest: dict[int, Release] = {}
    for release in supported():
        newest[release.major] = release
    return tuple(newest.values())
