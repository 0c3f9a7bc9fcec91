"""The lab's vagrant provider against a fake ``vagrant`` on PATH, and the Vagrantfile.

The fake (``data/fake_vagrant/vagrant``) records every call and answers as
Vagrant does; the Vagrantfile is checked with ``ruby -c`` and evaluated by a
Ruby probe that records its settings per machine and provider (and with
``vagrant validate`` where a real Vagrant is installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hvbsd import releases
from hvbsd.lab.providers import PROVIDERS, ProviderError
from hvbsd.lab.vagrant import MACHINES, NOT_INSTALLED, VagrantProvider, machine_names
from hvbsd.locate import data_root

DATA = Path(__file__).parent / "data" / "fake_vagrant"
FAKE = DATA / "vagrant"
PROBE = DATA / "vagrantfile_probe.rb"
REPO = data_root()
VARS = REPO / "examples" / "azure-lagg.yml"
REAL_VAGRANT = shutil.which("vagrant")


class Fake:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "vagrant-calls.jsonl"
        wrapper = self.bin / "vagrant"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        wrapper.chmod(0o755)
        self.path = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"
        monkeypatch.setenv("PATH", self.path)
        monkeypatch.setenv("FAKE_VAGRANT_LOG", str(self.log))
        for name in ("FAKE_VAGRANT_FAIL", "HVBSD_VAGRANT_PROVIDER", "HVBSD_VAGRANT_ROOT",
                     "HVBSD_LAB_VARS"):
            monkeypatch.delenv(name, raising=False)
        self.monkeypatch = monkeypatch

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]

    def fail(self, what: str) -> None:
        self.monkeypatch.setenv("FAKE_VAGRANT_FAIL", what)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


@pytest.fixture
def provider(tmp_path: Path) -> VagrantProvider:
    return VagrantProvider(tmp_path / "lab")


class Progress:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, guest: str, message: str) -> None:
        self.lines.append((guest, message))


def test_registered_as_the_vagrant_provider(tmp_path: Path) -> None:
    assert isinstance(PROVIDERS["vagrant"](tmp_path), VagrantProvider)


def test_up_provision_status_down(fake: Fake, provider: VagrantProvider) -> None:
    progress = Progress()
    targets = provider.up(["fbsd151-ufs"], VARS, progress)
    assert fake.argvs() == [
        ["status", "--machine-readable"],
        ["up", "fbsd151-ufs", "--no-provision"],
        ["ssh-config", "fbsd151-ufs"],
    ]
    assert {call["cwd"] for call in fake.calls()} == {str(REPO)}
    assert {call["HVBSD_LAB_VARS"] for call in fake.calls()} == {str(VARS)}
    assert ("fbsd151-ufs", "Booting VM...") in progress.lines
    assert progress.lines[-1] == ("fbsd151-ufs", "up")

    [target] = targets
    assert (target.name, target.provider, target.variables_file) == ("fbsd151-ufs", "vagrant", VARS)
    url = urlsplit(target.hosts_spec)
    assert (url.scheme, url.hostname) == ("ssh", "fbsd151-ufs")
    config = Path(parse_qs(url.query)["ssh_config"][0])
    assert config == provider.state_dir / "fbsd151-ufs.ssh-config"
    text = config.read_text()
    assert text.startswith("Host fbsd151-ufs\n")
    assert "  HostName 127.0.0.1\n" in text and "  Port 2200\n" in text
    assert not [p for p in config.parent.iterdir() if p.name.startswith(".")]  # no temp files

    provider.provision(targets, progress)
    assert fake.argvs()[3:] == [["provision", "fbsd151-ufs"]]
    assert fake.calls()[3]["HVBSD_LAB_VARS"] == str(VARS)
    assert progress.lines[-1] == ("fbsd151-ufs", "provisioned")

    assert provider.status() == [("fbsd151-ufs", "running")] + [
        (name, "not_created") for name in MACHINES[1:]]
    provider.down(progress)
    assert fake.argvs()[-1] == ["destroy", "--force"]
    assert not config.exists()
    assert {state for _name, state in provider.status()} == {"not_created"}
    log = (provider.state_dir / "vagrant.log").read_text()
    assert "Running provisioner: deploy (ansible)..." in log


def test_hosts_spec_is_accepted_by_testinfra(fake: Fake, provider: VagrantProvider) -> None:
    testinfra = pytest.importorskip("testinfra")
    [target] = provider.up(["fbsd151-zfs"], VARS, Progress())
    host = testinfra.get_host(target.hosts_spec)
    backend = host.backend
    assert backend.get_connection_type() == "ssh"
    assert backend.ssh_config == str(provider.ssh_config_path("fbsd151-zfs"))
    assert backend.host.name == "fbsd151-zfs"


def test_up_without_guests_starts_the_autostart_machines(
        fake: Fake, provider: VagrantProvider) -> None:
    progress = Progress()
    targets = provider.up([], VARS, progress)
    assert [t.name for t in targets] == ["fbsd151-ufs", "fbsd151-zfs"]
    assert ("fbsd151-zfs", "Machine booted and ready!") in progress.lines
    assert fake.argvs() == [
        ["status", "--machine-readable"],
        ["up", "--no-provision"],
        ["status", "--machine-readable"],
        ["ssh-config", "fbsd151-ufs"],
        ["ssh-config", "fbsd151-zfs"],
    ]


def test_vagrant_provider_from_the_environment(
        fake: Fake, provider: VagrantProvider, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("HVBSD_VAGRANT_PROVIDER", "libvirt")
    VagrantProvider(tmp_path / "lab").up(["fbsd151-ufs"], VARS, Progress())
    assert ["up", "fbsd151-ufs", "--no-provision", "--provider=libvirt"] in fake.argvs()


def test_failing_up_names_the_machine_and_shows_its_output(
        fake: Fake, provider: VagrantProvider) -> None:
    fake.fail("up:fbsd151-zfs")
    with pytest.raises(ProviderError) as error:
        provider.up(["fbsd151-ufs", "fbsd151-zfs"], VARS, Progress())
    message = str(error.value)
    assert message.startswith("vagrant up fbsd151-zfs failed (exit 1)")
    assert "Timed out while waiting for the machine to boot" in message
    assert "Importing base box" in message
    assert "fbsd151-ufs" not in message.split("\n", 1)[1]  # only this command's output
    assert str(provider.state_dir / "vagrant.log") in message
    assert ["ssh-config", "fbsd151-zfs"] not in fake.argvs()


def test_failing_provision_shows_the_ansible_error(fake: Fake, provider: VagrantProvider) -> None:
    targets = provider.up(["fbsd151-ufs"], VARS, Progress())
    fake.fail("provision")
    with pytest.raises(ProviderError, match=r"^vagrant provision fbsd151-ufs failed") as error:
        provider.provision(targets, Progress())
    assert "fatal: [fbsd151-ufs]: FAILED!" in str(error.value)
    assert "Ansible failed to complete successfully" in str(error.value)


def test_unknown_machine_lists_the_vagrantfiles(fake: Fake, provider: VagrantProvider) -> None:
    with pytest.raises(ProviderError) as error:
        provider.up(["g1", "fbsd151-ufs"], VARS, Progress())
    assert str(error.value) == ("unknown Vagrant machine(s) g1; the Vagrantfile defines: "
                                + ", ".join(MACHINES))
    assert fake.argvs() == [["status", "--machine-readable"]]


def test_missing_vars_file(fake: Fake, provider: VagrantProvider, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="no such file"):
        provider.up(["fbsd151-ufs"], tmp_path / "nope.yml", Progress())
    assert fake.argvs() == []


def test_vagrant_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    lab = VagrantProvider(tmp_path / "lab")
    for call in (lambda: lab.up(["fbsd151-ufs"], VARS, Progress()), lab.status,
                 lambda: lab.down(Progress())):
        with pytest.raises(ProviderError) as error:
            call()
        assert str(error.value) == NOT_INSTALLED


def test_default_guests_are_the_machines_of_the_release(tmp_path: Path) -> None:
    lab = VagrantProvider(tmp_path)
    assert lab.default_guests(2, "15.1") == ["fbsd151-ufs", "fbsd151-zfs"]
    assert lab.default_guests(1, "14.5") == ["fbsd145-ufs"]
    assert sorted(MACHINES) == sorted(name for release in releases.names()
                                      for name in machine_names(release))
    with pytest.raises(ProviderError, match=r"defines 2 machines of FreeBSD 14\.4"):
        lab.default_guests(3, "14.4")


def test_failing_destroy(fake: Fake, provider: VagrantProvider) -> None:
    provider.up(["fbsd151-ufs"], VARS, Progress())
    fake.fail("destroy:fbsd151-ufs")
    with pytest.raises(ProviderError, match=r"(?s)^vagrant destroy failed.*error occurred while"):
        provider.down(Progress())


# -- the Vagrantfile ---------------------------------------------------------------------

needs_ruby = pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed")


@needs_ruby
def test_vagrantfile_syntax() -> None:
    result = subprocess.run(["ruby", "-c", str(REPO / "Vagrantfile")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Syntax OK"


@pytest.mark.skipif(REAL_VAGRANT is None, reason="vagrant is not installed")
def test_vagrant_validate() -> None:  # pragma: no cover - needs a real Vagrant
    result = subprocess.run([REAL_VAGRANT or "vagrant", "validate"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def probe(**env: str) -> list[dict]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HVBSD_")}
    result = subprocess.run(["ruby", str(PROBE), str(REPO / "Vagrantfile")], cwd=REPO,
                            env={**environ, **env}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def settings(events: list[dict], *path: str) -> dict:
    """The settings made on the object at ``path``."""
    return {e["set"]: e["value"] for e in events if "set" in e and tuple(e["path"]) == path}


def calls(events: list[dict], name: str, *path: str) -> list[dict]:
    return [e for e in events if e.get("call") == name and tuple(e["path"]) == path]


def machine(name: str, *rest: str) -> tuple[str, ...]:
    return ("vm", f"define:{name}", *rest)


@needs_ruby
def test_vagrantfile_machines_and_boxes() -> None:
    events = probe()
    defined = calls(events, "define", "vm")
    default = releases.default().name
    # the default release's two machines start with a plain `vagrant up`; every
    # supported release has a ufs and a zfs machine
    assert [(d["args"][0], d["kwargs"]["autostart"]) for d in defined][:2] == [
        ("fbsd151-ufs", True), ("fbsd151-zfs", True)] and default == "15.1"
    assert all(not d["kwargs"]["autostart"] for d in defined[2:])
    # the provider's and the fake's machines are the Vagrantfile's
    assert [d["args"][0] for d in defined] == list(MACHINES)
    fake_default = ",".join(MACHINES)
    assert f'"FAKE_VAGRANT_MACHINES", "{fake_default}"' in FAKE.read_text()

    assert settings(events, "vm")["guest"] == "freebsd"
    assert settings(events, "ssh") == {"shell": "sh"}
    assert calls(events, "synced_folder", "vm") == [
        {"path": ["vm"], "call": "synced_folder", "args": [".", "/vagrant"],
         "kwargs": {"disabled": True}}]

    devices = {"virtualbox": "em", "libvirt": "vtnet", "hyperv": "hn"}
    for release in releases.supported():
        for name in machine_names(release.name):
            for prov, device in devices.items():
                override = machine(name, "vm", f"provider:{prov}", "override")
                assert settings(events, *override, "vm")["box"] == release.box(prov)
                assert settings(events, *override, "freebsd") == {"device": device}
    # the official box of each release for VirtualBox, roboxes of its major elsewhere
    assert releases.get("14.5").box("virtualbox") == "freebsd/FreeBSD-14.5-RELEASE"
    assert releases.get("15.1").box("hyperv") == "generic/freebsd15"


@needs_ruby
def test_vagrantfile_hyperv_keeps_kvp_and_vss_and_turns_the_simulation_off() -> None:
    events = probe()
    hyperv = machine("fbsd151-ufs", "vm", "provider:hyperv")
    services = settings(events, *hyperv)["vm_integration_services"]
    assert services["key_value_pair_exchange"] is True and services["vss"] is True
    assert calls(events, "network", *hyperv, "override", "vm")[0]["kwargs"] == {
        "bridge": "Default Switch"}
    [off] = calls(events, "provision", *hyperv, "override", "vm")
    assert off["args"] == ["lab"] and off["kwargs"] == {"type": "ansible", "run": "never"}
    # forced on: no override
    events = probe(HVBSD_LAB_SIM="1")
    assert calls(events, "provision", *hyperv, "override", "vm") == []


@needs_ruby
def test_vagrantfile_provisioners() -> None:
    events = probe()
    vm = machine("fbsd151-zfs", "vm")
    provs = calls(events, "provision", *vm)
    assert [(p["args"][0], p["kwargs"]["type"]) for p in provs] == [
        ("bootstrap", "shell"), ("deploy", "ansible"), ("lab", "ansible")]
    bootstrap = provs[0]["kwargs"]
    assert bootstrap["privileged"] is True and bootstrap["args"] == ["zfs"]
    assert "pkg install -y python3" in bootstrap["inline"]
    assert "pw usermod vagrant -s /bin/sh" in bootstrap["inline"]
    assert provs[2]["kwargs"]["run"] == "once"
    default_vars = REPO / "lab" / "vars" / "default.yml"
    expected_vars = default_vars if default_vars.exists() else REPO / "examples" / "azure-lagg.yml"
    for name, playbook in (("deploy", "deploy.yml"), ("lab", "lab/lab.yml")):
        ansible = settings(events, *vm, f"provision:{name}")
        assert ansible["playbook"] == playbook and (REPO / playbook).is_file()
        assert ansible["become"] is True
        assert ansible["extra_vars"] == {"ansible_python_interpreter": "/usr/local/bin/python3",
                                         "ansible_become_method": "sudo"}
        assert ansible["raw_arguments"] == [f"--extra-vars=@{expected_vars}"]
        assert ansible["config_file"] == str(REPO / "ansible.cfg")
    ufs = calls(events, "provision", *machine("fbsd151-ufs", "vm"))
    assert ufs[0]["kwargs"]["args"] == ["ufs"]


@needs_ruby
def test_vagrantfile_environment(tmp_path: Path) -> None:
    vars_file = tmp_path / "v.yml"
    vars_file.write_text("hyperv_guest_mode: transparent\n")
    events = probe(HVBSD_BOX="my/freebsd15", HVBSD_BOX_14_4="my/freebsd144", HVBSD_LAB_SIM="0",
                   HVBSD_LAB_VARS=str(vars_file), HVBSD_BECOME="su", HVBSD_MEMORY="4096")
    for prov in ("virtualbox", "libvirt", "hyperv"):
        override = machine("fbsd151-ufs", "vm", f"provider:{prov}", "override", "vm")
        assert settings(events, *override)["box"] == "my/freebsd15"
        override = machine("fbsd144-ufs", "vm", f"provider:{prov}", "override", "vm")
        assert settings(events, *override)["box"] == "my/freebsd144"
        override = machine("fbsd145-ufs", "vm", f"provider:{prov}", "override", "vm")
        assert settings(events, *override)["box"] == releases.get("14.5").box(prov)
    assert settings(events, *machine("fbsd151-ufs", "vm", "provider:libvirt"))["memory"] == 4096
    vm = machine("fbsd151-ufs", "vm")
    [lab] = [p for p in calls(events, "provision", *vm) if p["args"] == ["lab"]]
    assert lab["kwargs"]["run"] == "never"
    deploy = settings(events, *vm, "provision:deploy")
    assert deploy["raw_arguments"] == [f"--extra-vars=@{vars_file}"]
    assert deploy["extra_vars"]["ansible_become_method"] == "su"
    assert deploy["extra_vars"]["ansible_become_password"] == "vagrant"


@needs_ruby
@pytest.mark.parametrize(("env", "message"), [
    ({"HVBSD_LAB_VARS": "/nonexistent/v.yml"}, "HVBSD_LAB_VARS=/nonexistent/v.yml: no such file"),
    ({"HVBSD_LAB_SIM": "maybe"}, "HVBSD_LAB_SIM=maybe: use auto, 1 or 0"),
    ({"HVBSD_BECOME": "doas"}, "HVBSD_BECOME=doas: use sudo or su"),
])
def test_vagrantfile_refuses_bad_environment(env: dict[str, str], message: str) -> None:
    result = subprocess.run(["ruby", str(PROBE), str(REPO / "Vagrantfile")], cwd=REPO,
                            env={**os.environ, **env}, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert f"hvbsd: {message}" in result.stderr


# -- hvbsd lab ---------------------------------------------------------------------------

@pytest.mark.skipif(not (REPO / "src" / "hvbsd" / "lab" / "cli.py").exists(),
                    reason="hvbsd lab is not there yet")
def test_hvbsd_lab_with_the_vagrant_provider(fake: Fake, tmp_path: Path) -> None:
    lab_dir = tmp_path / "labstate"
    env = {**os.environ, "PATH": fake.path}

    def hvbsd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hvbsd", "lab", *args, "--lab-dir",
                               str(lab_dir), "--progress", "plain"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False, timeout=120)

    up = hvbsd("up", "--provider", "vagrant", "--guests", "fbsd151-ufs", "--vars", str(VARS))
    assert up.returncode == 0, up.stdout + up.stderr
    config = lab_dir / "vagrant" / "fbsd151-ufs.ssh-config"
    assert f"fbsd151-ufs: ssh://fbsd151-ufs?ssh_config={config}" in up.stdout
    assert config.read_text().startswith("Host fbsd151-ufs\n")
    assert fake.argvs() == [["status", "--machine-readable"],
                            ["up", "fbsd151-ufs", "--no-provision"],
                            ["ssh-config", "fbsd151-ufs"]]
    deployed_with = fake.calls()[1]["HVBSD_LAB_VARS"]
    assert deployed_with and Path(deployed_with).is_file()

    status = hvbsd("status")
    assert status.returncode == 0, status.stderr
    assert "fbsd151-ufs" in status.stdout and "running" in status.stdout

    provision = hvbsd("provision")
    assert provision.returncode == 0, provision.stdout + provision.stderr
    assert fake.argvs()[-1] == ["provision", "fbsd151-ufs"]
    assert fake.calls()[-1]["HVBSD_LAB_VARS"] == deployed_with

    down = hvbsd("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert fake.argvs()[-1] == ["destroy", "--force"]
    assert not config.exists()


@pytest.mark.skipif(not (REPO / "src" / "hvbsd" / "lab" / "cli.py").exists(),
                    reason="hvbsd lab is not there yet")
def test_hvbsd_lab_failing_vagrant_up(fake: Fake, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": fake.path, "FAKE_VAGRANT_FAIL": "up"}
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd", "lab", "up", "--provider", "vagrant", "--guests", "1",
         "--lab-dir", str(tmp_path / "labstate"), "--progress", "plain"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "hvbsd lab up: vagrant up fbsd151-ufs failed (exit 1)" in result.stderr
    assert "Timed out while waiting for the machine to boot" in result.stderr
