"""The zipapp: shebang, mode, isolated interpreter, standard library only, Python 3.9."""

from __future__ import annotations

import ast
import glob
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd.vss import cli as vss_cli
from hvbsd.vss.protocol import Op, Status

VSS_DIR = Path(vss_cli.__file__).resolve().parent


@pytest.fixture
def bundle(tmp_path) -> Path:
    out = tmp_path / "hvbsd_vssd"
    vss_cli.bundle(out)
    return out


def test_bundle_is_executable_with_the_freebsd_python_shebang(bundle):
    assert bundle.read_bytes().startswith(b"#!/usr/local/bin/python3\n")
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o755


def test_interpreter_is_overridable(tmp_path):
    out = tmp_path / "v.pyz"
    vss_cli.bundle(out, "/usr/local/bin/python3.11")
    assert out.read_bytes().startswith(b"#!/usr/local/bin/python3.11\n")


def test_bundling_twice_gives_identical_bytes():
    assert vss_cli.archive_bytes() == vss_cli.archive_bytes()


@pytest.mark.parametrize(("interpreter", "complaint"), [
    ("python3", "must be an absolute path"), ("/usr/bin/env python3", "whitespace")])
def test_bad_interpreter_is_refused_naming_it(tmp_path, interpreter, complaint):
    with pytest.raises(ValueError, match=complaint):
        vss_cli.bundle(tmp_path / "v.pyz", interpreter)
    assert not (tmp_path / "v.pyz").exists()


def test_cli_reports_a_missing_directory_and_writes_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from hvbsd.cli import main; sys.exit(main())",
         "bundle-vssd", str(tmp_path / "no" / "v.pyz")], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"directory {tmp_path / 'no'} does not exist" in result.stderr


def test_bundle_help_runs_with_an_isolated_interpreter_and_no_site(bundle):
    result = subprocess.run([sys.executable, "-I", "-S", str(bundle), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "--freeze-timeout" in result.stdout and "--sim-platform" in result.stdout


def test_bundle_imports_only_the_standard_library(bundle):
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {str(bundle)!r})\n"
        "import hvbsd.vss.daemon, hvbsd.vss.simwire\n"
        "print('\\n'.join(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    outside = loaded - set(sys.stdlib_module_names) - {"hvbsd", "__main__"}
    assert outside == set()
    assert "hvbsd.vss.cli" not in result.stdout.split()


def test_every_import_in_the_package_source_is_stdlib_or_hvbsd_vss():
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in sorted(VSS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = (top in stdlib or top == "__future__"
                           or name == "hvbsd.vss" or name.startswith("hvbsd.vss."))
                if not allowed:
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def _python39() -> str | None:
    candidates = glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))
    candidates.append(shutil.which("python3.9") or "")
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 9)":
            return candidate
    return None


def test_bundle_freezes_and_thaws_under_python_3_9(bundle, lab, kernel, fs_factory, m):
    python39 = _python39()
    if python39 is None:
        pytest.skip("no Python 3.9 interpreter on this host")
    lab.write_hook("10-db")
    service = fs_factory("two_ufs")
    daemon = subprocess.Popen(
        [python39, "-I", "-S", str(bundle), "-n", "--device", lab.kernel_path,
         "--sim-platform", lab.fs_path, "--hooks-dir", str(lab.hooks_dir),
         "--state-file", str(lab.state_file), "--pidfile", str(lab.pidfile),
         "--log-file", str(lab.log_file)], stdin=subprocess.DEVNULL)
    try:
        kernel.wait_connected()
        assert kernel.request(Op.CHECK).status == Status.SUCCESS
        assert kernel.request(Op.FREEZE).status == Status.SUCCESS
        assert service.suspended == {m.ROOT_UFS.fsid, m.VAR_UFS.fsid}
        assert kernel.request(Op.THAW).status == Status.SUCCESS
        assert service.suspended == frozenset()
        assert lab.journal() == ["10-db freeze", "10-db thaw"]
        daemon.terminate()
        assert daemon.wait(5) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
