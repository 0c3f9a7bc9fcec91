"""The zipapp runs the daemon with only the standard library; the manual page is complete."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from kvp_guest import HN0_MAC, Guest

from hvbsd.kvp import cli
from hvbsd.kvp.daemon import build_parser
from hvbsd.sim import hyperv_kvp as host

ROOT = Path(__file__).resolve().parents[3]
MANPAGE = ROOT / "docs" / "hvbsd_kvpd.8"


def test_the_bundle_holds_kvp_and_only_the_shared_vss_modules(tmp_path: Path) -> None:
    out = tmp_path / "hvbsd_kvpd"
    assert cli.run(cli.argparse.Namespace(out=str(out), interpreter=sys.executable)) == 0
    assert out.read_bytes().startswith(f"#!{sys.executable}\n".encode())
    assert out.stat().st_mode & 0o777 == 0o755
    names = zipfile.ZipFile(out).namelist()
    assert sorted(n for n in names if n.startswith("hvbsd/vss/")) == [
        "hvbsd/vss/__init__.py", "hvbsd/vss/detach.py", "hvbsd/vss/files.py",
        "hvbsd/vss/log.py"]
    assert "hvbsd/kvp/daemon.py" in names and "hvbsd/kvp/cli.py" not in names
    assert cli.archive_bytes(sys.executable) == cli.archive_bytes(sys.executable)


def test_the_bundled_daemon_answers_the_host_without_hvbsd_installed(guest: Guest) -> None:
    bundle = guest.root / "hvbsd_kvpd"
    cli.bundle(bundle, sys.executable)
    argv = guest.argv()
    argv[0:3] = [sys.executable, "-I", "-S", str(bundle)]  # no site-packages, no PYTHONPATH
    process = subprocess.Popen(argv, env=guest.env(), stderr=subprocess.PIPE, text=True)
    guest.processes.append(process)
    guest.driver.wait_registered(15)
    status, reply = guest.transact(host.host_get_ip_info(HN0_MAC.upper()))
    assert status == 0
    assert "10.0.0.4" in host.decode_ip_info(reply).addresses


def test_a_bundle_target_that_is_a_directory_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert cli.run(cli.argparse.Namespace(out=str(tmp_path / "d"),
                                          interpreter=sys.executable)) == 2
    assert cli.run(cli.argparse.Namespace(out=str(tmp_path / "x"), interpreter="python3")) == 2


def test_manual_page_has_no_mandoc_warnings() -> None:
    mandoc = shutil.which("mandoc")
    if mandoc is None:
        pytest.skip("mandoc is not installed")
    result = subprocess.run([mandoc, "-T", "lint", "-W", "warning", str(MANPAGE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manual_page_documents_every_option() -> None:
    text = MANPAGE.read_text()
    options = [o for action in build_parser()._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"]
    assert len(options) >= 11
    assert [o for o in options if not re.search(r"Fl Fl " + o[2:] + r"\b", text)] == []
