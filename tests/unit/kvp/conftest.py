"""Fixtures of the KVP tests: a guest directory, the simulated driver, the real daemon."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kvp_guest import Guest


@pytest.fixture
def guest():
    # a short directory: the device socket's path must fit sun_path
    root = Path(tempfile.mkdtemp(prefix="kvp.", dir="/tmp"))
    g = Guest(root)
    yield g
    g.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def running(guest: Guest) -> Guest:
    guest.start()
    return guest
