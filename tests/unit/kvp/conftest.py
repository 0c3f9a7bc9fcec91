"""Fixtures of the KVP tests: a guest directory, the simulated driver, the real daemon."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kvp_guest import Guest


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A fresh directory under /tmp, removed afterwards: short, as the device
    socket's path in it must fit sun_path."""
    root = Path(tempfile.mkdtemp(prefix="kvp.", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def guest(short_root: Path) -> Iterator[Guest]:
    g = Guest(short_root)
    yield g
    g.close()


@pytest.fixture
def running(guest: Guest) -> Guest:
    guest.start()
    return guest
