"""Fixtures for the lab's checks: what hvbsd renders for the host under test.

The checks run with plain testinfra against any host that was deployed with
hvbsd (a simulated guest, a Vagrant box, a real VM):

    pytest tests/infra --hosts=hvbsd-sim://g1 --hvbsd-vars examples/azure-lagg.yml
    pytest tests/infra --hosts=ssh://box --ssh-config=ssh.cfg --hvbsd-vars vars.yml

`--hvbsd-vars` names the YAML file of the host's hvbsd variables (the same
file given to `hvbsd render --vars`); the checks compare the host with what
hvbsd renders from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hvbsd-vars", metavar="FILE",
                     help="YAML file of the hvbsd variables the host was deployed with")


@pytest.fixture(scope="session")
def hvbsd_variables(request: pytest.FixtureRequest) -> dict:
    path = request.config.getoption("--hvbsd-vars")
    if not path:
        pytest.fail("--hvbsd-vars FILE is required: the variables the host was deployed with")
    return yaml.safe_load(Path(path).read_text()) or {}


@pytest.fixture(scope="session")
def rendered(hvbsd_variables: dict) -> dict:
    """Guest path -> RenderedFile, for every file hvbsd wants on this host."""
    from hvbsd.render import render_host

    return render_host(hvbsd_variables)


@pytest.fixture(scope="session")
def unwanted_paths(rendered: dict) -> list[str]:
    """Single-file outputs of the manifest that this host's variables do not want."""
    from hvbsd.render import load_manifest

    manifest = load_manifest()
    return sorted(
        output.path for output in manifest.outputs
        if not output.per_interface and not output.block and output.path not in rendered
    )
