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
    parser.addoption("--hvbsd-live", action="store_true",
                     help="the host was deployed and rebooted (hvbsd lab provision does both):"
                     " also check what runs (loader tunables, the VSS daemon) and play a"
                     " backup and VF hot-plug through the simulated Hyper-V host")
    parser.addoption("--hvbsd-timeline", metavar="DIR",
                     help="write what each scenario did, when, as JSON files into DIR"
                     " (hvbsd lab draws its timelines from them)")


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


@pytest.fixture
def live(request: pytest.FixtureRequest) -> None:
    """Checks of the running host: skipped unless --hvbsd-live says it was deployed and booted."""
    if not request.config.getoption("--hvbsd-live"):
        pytest.skip("checks of the running host: pass --hvbsd-live for a host deployed and"
                    " rebooted (hvbsd lab does)")


@pytest.fixture(scope="module")
def hyperv(host, request: pytest.FixtureRequest):
    """The simulated Hyper-V host of ``host``: hvbsd's simulator APIs for ``hvbsd-sim://``
    guests, ``hvbsd-box`` on the target for any other host (see hvbsd.lab.hyperv)."""
    from hvbsd.lab.hyperv import for_host

    return for_host(host, request.config.getoption("--hvbsd-timeline"))
