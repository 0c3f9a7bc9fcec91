"""The manual page lints clean and documents every option the daemon has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hvbsd.vss.daemon import build_parser

ROOT = Path(__file__).resolve().parents[3]
MANPAGE = ROOT / "docs" / "hvbsd_vssd.8"


def test_manual_page_has_no_mandoc_warnings():
    mandoc = shutil.which("mandoc")
    if mandoc is None:
        pytest.skip("mandoc is not installed")
    # level "warning": cross references to FreeBSD pages cannot resolve on this host
    result = subprocess.run([mandoc, "-T", "lint", "-W", "warning", str(MANPAGE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manual_page_and_readme_mention_every_long_option():
    text = MANPAGE.read_text()
    guide = (ROOT / "README.md").read_text()
    options = [o for action in build_parser()._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"]
    assert len(options) >= 13
    missing_man = [o for o in options if not re.search(r"Fl Fl " + o[2:] + r"\b", text)]
    missing_guide = [o for o in options if f"`{o}" not in guide]
    assert missing_man == [] and missing_guide == []
