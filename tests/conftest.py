"""Shared fixtures: simulated FreeBSD guests in a temporary state directory.

``sim_guest`` is one started guest (``g1``); ``sim_guests`` is a factory for
more (``sim_guests("g2", preset="zfs", nics=2)``).  Every guest is destroyed
afterwards, and the test fails if anything of it is left running.
Tests needing guests are skipped, with the reason, where Linux namespaces are
not available.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parent.parent


def _skip_without_namespaces() -> None:
    from hvbsd.sim import namespace

    reason = namespace.probe()
    if reason is not None:
        pytest.skip(f"simulated guests unavailable: {reason}")


@pytest.fixture
def sim_root(tmp_path: Path) -> Path:
    """An empty state root for simulated guests (what HVBSD_SIM_HOME would name)."""
    root = tmp_path / "sim"
    root.mkdir()
    return root


@pytest.fixture
def sim_guests(sim_root: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``sim_guests(name="g1", preset="ufs", nics=1)`` -> a started Guest."""
    _skip_without_namespaces()
    from hvbsd.sim.guest import Guest

    created: list[Guest] = []

    def make(name: str = "g1", **options: Any) -> Guest:
        guest = Guest.create(name, sim_root, **options)
        created.append(guest)
        return guest

    yield make
    for guest in created:
        if guest.state_dir.exists():
            guest.destroy()


@pytest.fixture
def sim_guest(sim_guests: Callable[..., Any]) -> Any:
    """One started simulated guest named g1."""
    return sim_guests("g1")


@pytest.fixture
def hvbsd_env(sim_root: Path) -> dict[str, str]:
    """Environment for subprocesses (hvbsd, ansible, pytest) that use ``sim_root``."""
    env = dict(os.environ)
    env["HVBSD_SIM_HOME"] = str(sim_root)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("HVBSD_SIM_NO_NAMESPACES", None)
    return env
