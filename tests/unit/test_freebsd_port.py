"""The FreeBSD port packaging/freebsd/sysutils/hvbsd-vssd agrees with hvbsd.

It installs what the Ansible role hyperv_vss installs (and nothing else), its
rc.d script is the one `hvbsd render` writes, its version is the project's,
and its do-build and do-install, run on a fresh release tarball (the sdist),
stage a daemon that runs. FreeBSD's make is not here: the Makefile is read
with a small parser for `VAR=` lines and target recipes, and the recipes run
with the values the ports framework gives those variables (Mk/bsd.port.mk,
Mk/Uses/python.mk in freebsd-ports).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from hvbsd.render.engine import render_host
from hvbsd.vss.cli import DEFAULT_INTERPRETER, archive_bytes

ROOT = Path(__file__).resolve().parents[2]
PORT = ROOT / "packaging" / "freebsd" / "sysutils" / "hvbsd-vssd"
ROLE = ROOT / "roles" / "hyperv_vss"
LOCALBASE = "/usr/local"

# What the role puts on a guest that the package deliberately does not ship,
# and why. A path here must still be one the role installs (no stale excuses).
NOT_PACKAGED = {
    # The host's own settings, rendered from its inventory variables; rc.subr's
    # load_rc_config reads the file when it exists, and the daemon's defaults
    # apply when it does not.
    "/etc/rc.conf.d/hvbsd_vssd": "per-host settings written by the role",
}

_VAR = re.compile(r"^([A-Z_][A-Z0-9_]*)\s*([?+:!]?=)\s*(.*)$")
_TARGET = re.compile(r"^([a-z][a-z0-9-]*):\s*(.*)$")
_SUBST = re.compile(r"%%([A-Z_][A-Z0-9_]*)%%")


def _logical_lines(text: str) -> list[str]:
    """make's lines: a trailing backslash continues the line."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def makefile_vars(text: str) -> dict[str, str]:
    """`VAR=value` assignments outside recipes, comments stripped."""
    found: dict[str, str] = {}
    for line in _logical_lines(text):
        if line.startswith("\t"):
            continue
        match = _VAR.match(line)
        if match:
            name, _op, value = match.groups()
            found[name] = " ".join(value.split("#", 1)[0].split())
    return found


def makefile_recipe(text: str, target: str) -> list[str]:
    """The commands of `target:` (tab-indented lines after it)."""
    commands: list[str] = []
    inside = False
    for line in _logical_lines(text):
        match = _TARGET.match(line)
        if match:
            inside = match.group(1) == target
            continue
        if inside and line.startswith("\t"):
            commands.append(" ".join(line.split()))
        elif inside and line.strip() and not line.startswith("#"):
            inside = False
    return commands


def expand(text: str, values: dict[str, str]) -> str:
    """${VAR} as make expands it, from ``values`` (recursively); unknown is an error."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"${{{name}}} has no value in this test")
        return expand(values[name], values)
    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}", one, text)


def plist_entries() -> list[str]:
    return [line for line in (PORT / "pkg-plist").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def port_vars() -> dict[str, str]:
    return makefile_vars((PORT / "Makefile").read_text())


def project_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match, "pyproject.toml has no version"
    return match.group(1)


def rendered_rc_script() -> str:
    files = render_host({})
    return files[f"{LOCALBASE}/etc/rc.d/hvbsd_vssd"].content.decode()


def port_form(rendered: str) -> str:
    """The rendered rc.d script as the port's files/hvbsd_vssd.in must hold it:
    the bundle's interpreter becomes %%PYTHON_CMD%% (the zipapp's #! in the
    port), every other /usr/local becomes %%PREFIX%%."""
    return rendered.replace(DEFAULT_INTERPRETER, "%%PYTHON_CMD%%").replace(
        LOCALBASE, "%%PREFIX%%")


def role_installed_paths() -> dict[str, str]:
    """Every path the role hyperv_vss installs, with what it is."""
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    manifest = yaml.safe_load((ROOT / "templates" / "manifest.yml").read_text())
    # the role installs each of its daemons (__hyperv_vss_daemons) under these
    # names; this port is hvbsd_vssd's (sysutils/hvbsd-kvpd is hvbsd_kvpd's)
    daemon = "hvbsd_vssd"
    assert daemon in [entry["name"] for entry in role_vars["__hyperv_vss_daemons"]]
    assert role_vars["__hyperv_vss_daemon_path"] == "/usr/local/sbin/{{ __hyperv_vss_daemon }}"
    paths = {
        f"{LOCALBASE}/sbin/{daemon}": "file",
        f"{LOCALBASE}/share/man/man8/{daemon}.8": "manpage",
        defaults["hyperv_vss_hooks_dir"]: "dir",
    }
    for output in manifest["outputs"]:
        if output["role"] == "hyperv_vss" and output["restart"] == daemon:
            paths[output["path"]] = "file"
    return paths


# --- the Makefile --------------------------------------------------------------


def test_distversion_is_the_project_version_and_distname_the_sdist(port_vars):
    assert port_vars["DISTVERSION"] == project_version()
    assert port_vars["DISTNAME"] == "hvbsd-${DISTVERSION}"


def test_makefile_sets_the_variables_a_port_needs(port_vars):
    for name in ("PORTNAME", "DISTVERSION", "CATEGORIES", "MAINTAINER", "COMMENT", "WWW",
                 "LICENSE", "USES", "NO_ARCH", "USE_RC_SUBR"):
        assert port_vars.get(name), f"{name} is missing or empty"
    assert port_vars["PORTNAME"] == "hvbsd-vssd"
    assert "sysutils" in port_vars["CATEGORIES"].split()
    assert port_vars["LICENSE"] == "BSD2CLAUSE"
    assert port_vars["NO_ARCH"] == "yes"
    assert "@" in port_vars["MAINTAINER"]
    assert port_vars["WWW"].startswith("https://")


def test_uses_python_from_the_version_the_project_requires(port_vars):
    wanted = re.search(r'^requires-python\s*=\s*">=\s*([0-9.]+)"',
                       (ROOT / "pyproject.toml").read_text(), re.M)
    assert wanted
    assert f"python:{wanted.group(1)}+" in port_vars["USES"].split()


def test_comment_is_short_and_has_no_trailing_period(port_vars):
    comment = port_vars["COMMENT"]
    assert len(comment) < 70, comment
    assert not comment.endswith(".")
    assert comment[0].isupper()
    assert not re.match(r"(A|An|The)\s", comment)
    assert not comment.lower().startswith(port_vars["PORTNAME"])


def test_pkg_descr_lines_fit_80_columns_and_use_no_substitutions():
    text = (PORT / "pkg-descr").read_text()
    long_lines = [line for line in text.splitlines() if len(line) > 80]
    assert not long_lines
    # pkg-descr is shown as it is: %%VAR%% would reach the user unexpanded
    assert not _SUBST.search(text)


def test_the_build_output_is_not_where_the_rc_script_is_expanded(port_vars):
    # SUB_FILES (USE_RC_SUBR) writes ${WRKDIR}/<name>; the zipapp must go elsewhere
    values = {"WRKDIR": "/w", "WRKSRC": "/w/src"}
    bundle = expand(port_vars["HVBSD_BUNDLE"], values)
    for name in port_vars["USE_RC_SUBR"].split():
        assert bundle != f"/w/{name}"


def test_every_substitution_in_the_port_files_has_a_value(port_vars):
    # SUB_LIST's defaults in Mk/bsd.port.mk, plus the port's own SUB_LIST
    known = {"PREFIX", "LOCALBASE", "DATADIR", "DOCSDIR", "EXAMPLESDIR", "WWWDIR", "ETCDIR"}
    known |= {item.split("=", 1)[0] for item in port_vars.get("SUB_LIST", "").split()}
    sub_files = port_vars["USE_RC_SUBR"].split() + port_vars.get("SUB_FILES", "").split()
    for name in sub_files:
        text = (PORT / "files" / f"{name}.in").read_text()
        assert set(_SUBST.findall(text)) <= known, name


# --- the rc.d script -------------------------------------------------------------


def test_rc_script_is_what_hvbsd_render_writes():
    rendered = rendered_rc_script()
    port = (PORT / "files" / "hvbsd_vssd.in").read_text()
    assert port == port_form(rendered), (
        "files/hvbsd_vssd.in drifted from templates/rc/hvbsd_vssd.rc.j2; regenerate it with "
        "port_form(rendered_rc_script()) from this test")


def test_rc_script_interpreter_is_the_one_the_bundle_writes():
    # the substitution of DEFAULT_INTERPRETER above is what keeps the #! line and
    # command_interpreter equal; it only works if the template uses that path
    rendered = rendered_rc_script()
    assert f"command_interpreter={DEFAULT_INTERPRETER}\n" in rendered
    port = (PORT / "files" / "hvbsd_vssd.in").read_text()
    assert "command_interpreter=%%PYTHON_CMD%%\n" in port
    assert "command=%%PREFIX%%/sbin/hvbsd_vssd\n" in port


def test_rc_script_comparison_sees_a_changed_template():
    rendered = rendered_rc_script()
    changed = rendered.replace("REQUIRE: FILESYSTEMS syslogd", "REQUIRE: LOGIN")
    assert changed != rendered
    assert (PORT / "files" / "hvbsd_vssd.in").read_text() != port_form(changed)


# --- pkg-plist -------------------------------------------------------------------


def test_plist_entries_are_prefix_relative():
    for entry in plist_entries():
        path = entry.split(None, 1)[1] if entry.startswith("@dir ") else entry
        assert not entry.startswith("@") or entry.startswith("@dir "), entry
        assert not path.startswith("/"), entry
        assert LOCALBASE not in path and "%%PREFIX%%" not in path, entry
        assert ".." not in Path(path).parts, entry


def test_plist_and_rc_script_are_exactly_what_the_role_installs(port_vars):
    rc_scripts = {f"etc/rc.d/{name}" for name in port_vars["USE_RC_SUBR"].split()}
    expected_plist: set[str] = set()
    packaged_rc: set[str] = set()
    for path, kind in role_installed_paths().items():
        if path in NOT_PACKAGED:
            continue
        assert path.startswith(LOCALBASE + "/"), (
            f"the role installs {path}, outside {LOCALBASE}: package it or add it to "
            "NOT_PACKAGED with the reason")
        relative = path[len(LOCALBASE) + 1:]
        if relative in rc_scripts:
            packaged_rc.add(relative)  # installed and listed by USE_RC_SUBR itself
        elif kind == "manpage":
            expected_plist.add(relative + ".gz")  # compress-man gzips it
        elif kind == "dir":
            expected_plist.add(f"@dir {relative}")
        else:
            expected_plist.add(relative)
    assert packaged_rc == rc_scripts
    assert sorted(plist_entries()) == sorted(expected_plist)


def test_every_excuse_for_not_packaging_is_still_a_role_path():
    assert set(NOT_PACKAGED) <= set(role_installed_paths())


# --- building the port from a release tarball ------------------------------------


def _tracked_tree(into: Path) -> None:
    """The project as a release is made from it: the files git tracks."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif source.is_symlink():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.readlink(source))


def _sdist(tmp: Path) -> Path:
    """`python -m build --sdist` without isolation: the backend's PEP 517 hook."""
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to make a release tarball from")
    tree = tmp / "checkout"
    tree.mkdir()
    _tracked_tree(tree)
    dist = tmp / "dist"
    code = ("import sys; from setuptools import build_meta; "
            "print(build_meta.build_sdist(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(dist)], cwd=tree,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return dist / result.stdout.strip().splitlines()[-1]


def _extract(tarball: Path, into: Path) -> None:
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            assert not member.name.startswith("/") and ".." not in Path(member.name).parts
            assert member.isfile() or member.isdir(), member.name
        if hasattr(tarfile, "data_filter"):  # Python 3.12+ (and security backports)
            archive.extractall(into, filter="data")
        else:
            archive.extractall(into)


def _bare_python(tmp: Path) -> str:
    """A python3 without site-packages, as FreeBSD's python package is before
    anything else is installed: the build may use the standard library only."""
    wrapper = tmp / "bin" / "python3.bare"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _run_recipe(commands: list[str], values: dict[str, str]) -> None:
    for command in commands:
        line = expand(command, values)
        result = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True,
                                check=False, env={"PATH": os.environ["PATH"]})
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"


def _staged(stage_prefix: Path) -> set[str]:
    """What the package would hold: files, and directories with nothing in them."""
    found = set()
    for path in stage_prefix.rglob("*"):
        relative = path.relative_to(stage_prefix).as_posix()
        if path.is_dir() and not any(path.iterdir()):
            found.add(f"@dir {relative}")
        elif not path.is_dir():
            found.add(relative)
    return found


def test_port_builds_and_stages_from_a_fresh_sdist(tmp_path, port_vars):
    makefile = (PORT / "Makefile").read_text()
    tarball = _sdist(tmp_path)
    distname = expand(port_vars["DISTNAME"], port_vars)
    assert tarball.name == f"{distname}.tar.gz"  # EXTRACT_SUFX's default

    wrkdir = tmp_path / "work"
    wrkdir.mkdir()
    _extract(tarball, wrkdir)
    python_cmd = _bare_python(tmp_path)
    stagedir = tmp_path / "stage"
    prefix = LOCALBASE
    stage_prefix = stagedir / prefix.lstrip("/")
    for directory in ("sbin", "share/man/man8", "etc/rc.d"):  # mtree's BSD.local.dist
        (stage_prefix / directory).mkdir(parents=True)
    values = {
        **port_vars,
        "WRKDIR": str(wrkdir), "WRKSRC": str(wrkdir / distname), "STAGEDIR": str(stagedir),
        "PREFIX": prefix, "LOCALBASE": LOCALBASE, "PYTHON_CMD": python_cmd,
        # Mk/bsd.commands.mk and bsd.port.mk (BINMODE 555, MANMODE 444)
        "SETENV": "env", "MKDIR": "mkdir -p",
        "INSTALL_SCRIPT": "install -m 555", "INSTALL_MAN": "install -m 444",
    }
    _run_recipe(makefile_recipe(makefile, "do-build"), values)
    _run_recipe(makefile_recipe(makefile, "do-install"), values)

    # what the framework adds: the rc.d script through SUB_LIST (install-rc-script)
    # and the compressed manual pages (compress-man)
    sub_list = {"PREFIX": prefix, "LOCALBASE": LOCALBASE}
    sub_list |= dict(item.split("=", 1) for item in port_vars["SUB_LIST"].split())
    sub_list = {key: expand(value, values) for key, value in sub_list.items()}
    for name in port_vars["USE_RC_SUBR"].split():
        source = (PORT / "files" / f"{name}.in").read_text()
        script = _SUBST.sub(lambda m: sub_list[m.group(1)], source)
        target = stage_prefix / "etc" / "rc.d" / name
        target.write_text(script)
        target.chmod(0o555)
    for page in (stage_prefix / "share" / "man").rglob("*.[0-9]"):
        page.with_name(page.name + ".gz").write_bytes(gzip.compress(page.read_bytes()))
        page.unlink()

    rc_scripts = {f"etc/rc.d/{name}" for name in port_vars["USE_RC_SUBR"].split()}
    assert _staged(stage_prefix) == set(plist_entries()) | rc_scripts

    daemon = stage_prefix / "sbin" / "hvbsd_vssd"
    head, _, body = daemon.read_bytes().partition(b"\n")
    assert head == b"#!" + python_cmd.encode()
    # the same daemon the role installs, built from the same sources
    assert body == archive_bytes(python_cmd).partition(b"\n")[2]
    rc_text = (stage_prefix / "etc" / "rc.d" / "hvbsd_vssd").read_text()
    assert f"command_interpreter={python_cmd}\n" in rc_text  # rc.subr _find_processes
    assert rc_text == rendered_rc_script().replace(DEFAULT_INTERPRETER, python_cmd)

    manpage = stage_prefix / "share" / "man" / "man8" / "hvbsd_vssd.8.gz"
    assert gzip.decompress(manpage.read_bytes()) == (ROOT / "docs" / "hvbsd_vssd.8").read_bytes()

    # the staged zipapp runs on a python without site-packages
    result = subprocess.run([str(daemon), "--help"], capture_output=True, text=True,
                            check=False, timeout=60, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert "hvbsd_vssd" in result.stdout
