"""The FreeBSD port packaging/freebsd/sysutils/hvbsd-kvpd agrees with hvbsd.

Its rc.d script is the one `hvbsd render` writes, its version is the
project's, its plist is what the role hyperv_vss installs for hvbsd_kvpd (less
the per-host flags file), and the bundle command of its do-build writes a
daemon that runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from hvbsd.render.engine import render_host
from hvbsd.vss.cli import DEFAULT_INTERPRETER

ROOT = Path(__file__).resolve().parents[3]
PORT = ROOT / "packaging" / "freebsd" / "sysutils" / "hvbsd-kvpd"
LOCALBASE = "/usr/local"


def makefile_vars() -> dict[str, str]:
    found = {}
    for line in (PORT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=\s*(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).split("#", 1)[0].strip()
    return found


def test_the_port_is_named_for_the_daemon_and_versioned_as_the_project():
    port = makefile_vars()
    version = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                        re.M)
    assert version
    assert port["PORTNAME"] == "hvbsd-kvpd"
    assert port["DISTVERSION"] == version.group(1)
    assert port["DISTNAME"] == "hvbsd-${DISTVERSION}"
    assert port["USE_RC_SUBR"] == "hvbsd_kvpd"
    for name in ("COMMENT", "WWW", "LICENSE", "USES", "NO_ARCH", "MAINTAINER"):
        assert port.get(name), name


def test_the_ports_rc_script_is_the_rendered_one():
    rendered = render_host({"hyperv_guest_kvp": "hvbsd"})[
        f"{LOCALBASE}/etc/rc.d/hvbsd_kvpd"].content.decode()
    expected = rendered.replace(DEFAULT_INTERPRETER, "%%PYTHON_CMD%%").replace(
        LOCALBASE, "%%PREFIX%%")
    assert (PORT / "files" / "hvbsd_kvpd.in").read_text() == expected


def test_the_plist_is_what_the_role_installs_for_hvbsd_kvpd_but_the_flags_file():
    role_vars = yaml.safe_load((ROOT / "roles" / "hyperv_vss" / "vars" / "main.yml").read_text())
    assert "hvbsd-kvpd" in [d["package"] for d in role_vars["__hyperv_vss_daemons"]]
    manifest = yaml.safe_load((ROOT / "templates" / "manifest.yml").read_text())
    outputs = [o["path"] for o in manifest["outputs"] if o["restart"] == "hvbsd_kvpd"]
    assert sorted(outputs) == ["/etc/rc.conf.d/hvbsd_kvpd", f"{LOCALBASE}/etc/rc.d/hvbsd_kvpd"]
    plist = (PORT / "pkg-plist").read_text().split()
    assert plist == ["sbin/hvbsd_kvpd", "share/man/man8/hvbsd_kvpd.8.gz"]
    assert (ROOT / "docs" / "hvbsd_kvpd.8").is_file()


def test_do_builds_bundle_command_writes_a_daemon_that_runs(tmp_path):
    recipe = (PORT / "Makefile").read_text().split("do-build:", 1)[1].split("\n\n", 1)[0]
    assert "-m hvbsd.kvp.cli --interpreter ${PYTHON_CMD}" in recipe.replace("\\\n", " ")
    out = tmp_path / "hvbsd_kvpd"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "hvbsd.kvp.cli", "--interpreter", sys.executable,
                    str(out)], env=env, check=True, capture_output=True)
    ran = subprocess.run([str(out), "--help"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"}, check=False)
    assert ran.returncode == 0 and "hvbsd_kvpd" in ran.stdout, ran.stderr
