"""The wheel's package list and the data locator agree with the tree."""

from __future__ import annotations

import sys
from pathlib import Path

from hvbsd.locate import data_path, data_root

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_python_package_of_src_is_in_the_wheel():
    found = {".".join(path.parent.relative_to(ROOT / "src").parts)
             for path in (ROOT / "src").rglob("__init__.py")}
    listed = {name for name in _setuptools()["packages"] if not name.startswith("hvbsd.data")}
    assert found == listed


def test_every_data_directory_the_code_reads_is_in_the_wheel():
    listed = {name.removeprefix("hvbsd.data.").replace(".", "/")
              for name in _setuptools()["packages"] if name.startswith("hvbsd.data.")}
    for needed in ("templates", "roles", "playbooks", "plugins", "lab", "tests/infra", "docs"):
        assert needed in listed, needed
        assert data_path(*needed.split("/")).is_dir(), needed


def test_a_checkout_is_its_own_data_root():
    assert data_root() == ROOT
    assert data_path("templates", "manifest.yml").is_file()
