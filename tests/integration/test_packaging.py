"""hvbsd as its users install it: the wheel in a fresh venv, the collection alone.

The wheel is built from this checkout and installed (with its dependencies,
from the package index) into a new virtual environment that cannot see the
checkout; every command then runs from ``/``. The collection is built with
``ansible-galaxy collection build``, installed into an empty collections path
and deployed from an empty directory with no ansible.cfg.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.render import render_host
from hvbsd.vss.cli import archive_bytes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "azure-lagg.yml"


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 900)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment less anything that points Python or Ansible at the checkout."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "ANSIBLE_", "HVBSD_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                  str(REPO)])
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("hvbsd-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    place = tmp_path_factory.mktemp("venv") / "v"
    made = _run([sys.executable, "-m", "venv", str(place)])
    assert made.returncode == 0, made.stderr
    installed = _run([str(place / "bin" / "pip"), "install", "-q", f"{wheel}[lab]"],
                     env=_clean_env())
    if installed.returncode != 0 and "No matching distribution" in installed.stderr:
        pytest.skip(f"the package index is not reachable: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr
    return place


def test_the_wheel_renders_lints_and_bundles_from_root(venv, tmp_path):
    env = _clean_env(PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    where = _run([str(venv / "bin" / "python"), "-c",
                  "import hvbsd.locate as l; print(l.data_root())"], cwd="/", env=env)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv)), "the wheel's own data, not the checkout"

    out = tmp_path / "out"
    rendered = _run(["hvbsd", "render", "--vars", str(EXAMPLE), "--out", str(out)], cwd="/",
                    env=env)
    assert rendered.returncode == 0, rendered.stderr
    expected = render_host(yaml.safe_load(EXAMPLE.read_text()))
    for path, file in expected.items():
        assert (out / path.lstrip("/")).read_bytes() == file.file_bytes(), path

    linted = _run(["hvbsd", "lint", str(out / "usr/local/etc/devd/hvbsd.conf")], cwd="/",
                  env=env)
    assert linted.returncode == 0, linted.stdout + linted.stderr

    bundle = tmp_path / "hvbsd_vssd"
    bundled = _run(["hvbsd", "bundle-vssd", str(bundle)], cwd="/", env=env)
    assert bundled.returncode == 0, bundled.stderr
    assert bundle.read_bytes() == archive_bytes()

    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    '../escaped':\n")
    refused = _run(["hvbsd", "render", "-i", str(inventory), "--out", str(tmp_path / "fleet")],
                   cwd="/", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr


def test_the_wheel_runs_the_lab_from_root(venv, tmp_path):
    from hvbsd.sim import namespace

    reason = namespace.probe()
    if reason is not None:
        pytest.skip(f"simulated guests unavailable: {reason}")
    env = _clean_env(PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
                     HVBSD_LAB_HOME=str(tmp_path / "lab"))
    report = tmp_path / "report"
    ran = _run(["hvbsd", "lab", "run", "--guests", "1", "--progress", "plain",
                "--report", str(report)], cwd="/", env=env)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "all checks passed" in ran.stdout + ran.stderr
    assert (report / "summary.md").is_file()


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built collection, installed into an empty collections path."""
    work = tmp_path_factory.mktemp("collection")
    # from outside the checkout, whose ansible.cfg shows the checkout as installed
    built = _run([sys.executable, "-m", "ansible.cli.galaxy", "collection", "build",
                  "--output-path", str(work), str(REPO)], env=_clean_env(), cwd=str(work))
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = work.glob("hvbsd-hyperv-*.tar.gz")
    path = work / "collections"
    installed = _run([sys.executable, "-m", "ansible.cli.galaxy", "collection", "install",
                      "-p", str(path), str(tarball)], env=_clean_env(), cwd=str(work))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return path


def test_the_collection_alone_builds_the_daemon(collection, tmp_path):
    """No hvbsd on the interpreter's path (-S: no site-packages): the collection's
    own copy of the daemon's sources makes the same zipapp the roles install."""
    root = collection / "ansible_collections" / "hvbsd" / "hyperv"
    out = tmp_path / "hvbsd_vssd"
    ran = _run([sys.executable, "-S", "-m", "hvbsd.vss.cli", str(out)], cwd=str(tmp_path),
               env=_clean_env(PYTHONPATH=str(root / "src")))
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == archive_bytes()
    without = _run([sys.executable, "-S", "-c", "import hvbsd.render"], cwd=str(tmp_path),
                   env=_clean_env(PYTHONPATH=str(root / "src")))
    assert without.returncode != 0, "the collection ships only the daemon's part of hvbsd"


def _recap(stdout: str, host: str) -> dict[str, int]:
    match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", stdout, re.MULTILINE)
    assert match, stdout
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def test_the_collection_deploys_from_an_empty_directory(collection, tmp_path):
    from hvbsd.sim import namespace
    from hvbsd.sim.guest import Guest

    reason = namespace.probe()
    if reason is not None:
        pytest.skip(f"simulated guests unavailable: {reason}")
    state = tmp_path / "sim"
    state.mkdir()
    variables = yaml.safe_load(EXAMPLE.read_text())
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"c1": {
        "ansible_connection": "hvbsd.hyperv.hvbsd_sim",
        # FreeBSD's python3 package, as the checkout's ansible.cfg says
        "ansible_python_interpreter": "/usr/local/bin/python3",
        "ansible_hvbsd_sim_state_dir": str(state), **variables}}}}))
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = _clean_env(ANSIBLE_COLLECTIONS_PATH=str(collection), ANSIBLE_NOCOLOR="1",
                     HVBSD_SIM_HOME=str(state),
                     PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    guest = Guest.create("c1", state)
    try:
        argv = [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory),
                "hvbsd.hyperv.deploy"]
        first = _run(argv, cwd=str(empty), env=env)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        assert _recap(first.stdout, "c1")["changed"] > 0
        second = _run(argv, cwd=str(empty), env=env)
        assert second.returncode == 0, second.stdout[-4000:]
        assert _recap(second.stdout, "c1")["changed"] == 0, second.stdout
        for path, file in render_host(variables).items():
            on_guest = guest.path(path).read_bytes()
            if file.block is None:
                assert on_guest == file.content, path
            else:
                assert file.file_bytes() in on_guest, path
        assert guest.path("/usr/local/sbin/hvbsd_vssd").read_bytes() == archive_bytes()
        assert list(empty.iterdir()) == [], "nothing written to the working directory"
    finally:
        guest.destroy()
