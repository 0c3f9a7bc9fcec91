"""Fixtures for hvbsd's checks: what hvbsd renders for each host under test.

The checks run with plain testinfra against any host deployed with hvbsd (a
simulated guest, a Vagrant box, a production VM), from a checkout or from the
installed package (``hvbsd check`` runs them from anywhere):

    hvbsd check --hosts=ssh://vm1 --hvbsd-vars vars.yml
    hvbsd check --hosts='ansible://all?ansible_inventory=inventory.yml'
    pytest tests/infra --hosts=hvbsd-sim://g1 --hvbsd-vars examples/azure-lagg.yml

Each host's hvbsd variables come from ``--hvbsd-vars FILE`` (the file given to
``hvbsd render --vars``; the same for every host), or, for ``ansible://``
hosts without it, from the inventory: group_vars and host_vars applied as
ansible-core applies them, so a fleet is checked in one run.

The checks come in three tiers, each a marker (select with ``-m``):

- ``hvbsd_files``: the files hvbsd installs, byte for byte, owners, modes;
- ``hvbsd_settings``: loader tunables, rc.conf and the running VSS daemon, read
  only, safe on any production guest (with ``--hvbsd-live``: the host was
  deployed and rebooted);
- ``hvbsd_scenarios``: a backup and VF hot-plug played through the simulated
  Hyper-V host (with ``--hvbsd-live``). They run only where a simulated host
  is there (an ``hvbsd-sim://`` guest, or a box where lab/lab.yml installed
  and set up ``hvbsd-box``); anywhere else they skip and say why, and nothing
  is injected into the host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

TIERS = {
    "hvbsd_files": "tier 1: the files hvbsd installs (content, owner, mode)",
    "hvbsd_settings": "tier 2: settings in effect and the running daemon (read-only)",
    "hvbsd_scenarios": "tier 3: scenarios played through the simulated Hyper-V host",
}
# What lab/lab.yml installs into a FreeBSD box, and what `hvbsd-box setup` leaves
# (see hvbsd.sim.box: DEFAULT_STATE, BoxNics.state_path).
BOX_COMMAND = "hvbsd-box"
BOX_STATE = "/var/run/hvbsd-box/box.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hvbsd-vars", metavar="FILE",
                     help="YAML file of the hvbsd variables the hosts were deployed with"
                     " (ansible:// hosts: taken from the inventory when not given)")
    parser.addoption("--hvbsd-live", action="store_true",
                     help="the host was deployed and rebooted: also check what runs (loader"
                     " tunables, rc.conf, the VSS daemon) and, where a simulated Hyper-V host"
                     " is there, play a backup and VF hot-plug through it")
    parser.addoption("--hvbsd-timeline", metavar="DIR",
                     help="write what each scenario did, when, as JSON files into DIR"
                     " (hvbsd lab draws its timelines from them)")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def _read_variables_file(path: str) -> dict[str, Any]:
    from hvbsd.render.loader import load_vars_file

    try:
        return load_vars_file(path)
    except (OSError, ValueError) as error:
        pytest.fail(f"--hvbsd-vars: {error}", pytrace=False)


def _inventory_source(backend: Any) -> Optional[str]:
    source = getattr(backend, "ansible_inventory", None)
    if source:
        return str(source)
    from ansible import constants

    defaults = [str(p) for p in (constants.DEFAULT_HOST_LIST or []) if Path(str(p)).exists()]
    return defaults[0] if defaults else None


def _inventory_variables(config: pytest.Config, source: str, name: str) -> dict[str, Any]:
    from hvbsd.render.inventory import inventory_hosts

    cache: dict[str, Any] = config.stash.setdefault(_INVENTORIES, {})
    if source not in cache:
        try:
            cache[source] = inventory_hosts(source)
        except ValueError as error:
            cache[source] = str(error)
    found = cache[source]
    if isinstance(found, str):
        pytest.fail(f"ansible inventory {found}", pytrace=False)
    if name not in found:
        pytest.fail(f"ansible inventory {source}: no host {name!r}", pytrace=False)
    return dict(found[name])


_INVENTORIES = pytest.StashKey[dict]()


@pytest.fixture(scope="module")
def hvbsd_variables(_testinfra_host: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The hvbsd variables the host under test was deployed with."""
    path = request.config.getoption("--hvbsd-vars")
    if path:
        return _read_variables_file(path)
    backend = _testinfra_host.backend
    if getattr(backend, "NAME", "") == "ansible":
        source = _inventory_source(backend)
        if source is None:
            pytest.fail("ansible:// hosts: name the inventory (?ansible_inventory=FILE or"
                        " --ansible-inventory FILE), or pass --hvbsd-vars FILE", pytrace=False)
        return _inventory_variables(request.config, source, str(backend.host))
    pytest.fail("--hvbsd-vars FILE is required: the variables the host was deployed with"
                " (or check ansible:// hosts, whose variables come from the inventory)",
                pytrace=False)


@pytest.fixture(scope="module")
def rendered(hvbsd_variables: dict) -> dict:
    """Guest path -> RenderedFile, for every file hvbsd wants on this host."""
    from hvbsd.render import render_host

    return render_host(hvbsd_variables)


@pytest.fixture(scope="module")
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


SIM_CONNECTIONS = ("hvbsd_sim", "hvbsd.hyperv.hvbsd_sim")


@pytest.fixture(scope="module")
def host(_testinfra_host: Any) -> Any:
    """testinfra's host; an ``ansible://`` host whose inventory connection is hvbsd_sim
    runs its commands through the hvbsd-sim backend (the same guest, entered the same
    way), instead of one ``ansible`` process per command. It stays an ansible:// host
    for the scenarios (see simulated_host_problem)."""
    backend = _testinfra_host.backend
    _testinfra_host.hvbsd_uri = backend.get_pytest_id()
    if getattr(backend, "NAME", "") != "ansible" or getattr(backend, "force_ansible", False):
        return _testinfra_host
    hostvars = backend.ansible_runner.inventory.get("_meta", {}).get("hostvars", {})
    found = hostvars.get(backend.host, {})
    if found.get("ansible_connection") not in SIM_CONNECTIONS:
        return _testinfra_host
    import testinfra

    from hvbsd.sim.testinfra_backend import register

    register()
    name = found.get("ansible_hvbsd_sim_guest") or found.get("ansible_host") or backend.host
    state_dir = found.get("ansible_hvbsd_sim_state_dir")
    query = f"?state_dir={state_dir}" if state_dir else ""
    direct = testinfra.get_host(f"hvbsd-sim://{name}{query}")
    direct.hvbsd_uri = _testinfra_host.hvbsd_uri
    return direct


def simulated_host_problem(host: Any) -> Optional[str]:
    """Why ``host`` has no simulated Hyper-V host to play scenarios with (None: it has one).

    Only an ``hvbsd-sim://`` host is played through the simulator's own APIs; any
    other (ssh://, ansible://, ...) must be a box the lab set up. Read-only: looks
    for what the lab installs, never starts anything."""
    uri = getattr(host, "hvbsd_uri", None) or host.backend.get_pytest_id()
    if uri.startswith("hvbsd-sim://"):
        return None  # hvbsd's simulator on this controller is the guest's Hyper-V host
    if host.run("command -v %s", BOX_COMMAND).rc != 0:
        return (f"no simulated Hyper-V host on {uri}: the scenarios inject"
                " simulated VF and backup events, so they run only where hvbsd lab installed"
                f" one ({BOX_COMMAND}, lab/lab.yml); this host is left alone")
    if not host.file(BOX_STATE).exists:
        return (f"{BOX_COMMAND} is installed on {uri} but not set up"
                f" ({BOX_STATE} is missing; re-run lab/lab.yml after a reboot)")
    return None


@pytest.fixture(scope="module")
def simulated_host(host: Any) -> None:
    """Skips, saying why, unless ``host`` has a simulated Hyper-V host the lab put there."""
    problem = simulated_host_problem(host)
    if problem is not None:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def hyperv(host: Any, simulated_host: None, request: pytest.FixtureRequest) -> Any:
    """The simulated Hyper-V host of ``host``: hvbsd's simulator APIs for ``hvbsd-sim://``
    guests, ``hvbsd-box`` on the target for a lab box (see hvbsd.lab.hyperv)."""
    from hvbsd.lab.hyperv import for_host

    return for_host(host, request.config.getoption("--hvbsd-timeline"))
