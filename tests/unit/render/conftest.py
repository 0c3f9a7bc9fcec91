"""Fixtures for the render tests: the examples and a runner for the real `hvbsd render`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ("azure-lagg", "static-dual-stack", "transparent")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(params=EXAMPLES)
def example(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def load_example() -> Callable[[str], dict]:
    def load(name: str) -> dict:
        return yaml.safe_load((ROOT / "examples" / f"{name}.yml").read_text())
    return load


@pytest.fixture(scope="session")
def hvbsd_render() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hvbsd", "render", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return run
