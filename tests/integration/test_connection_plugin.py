"""The hvbsd_sim connection plugin: a real ansible-playbook run inside simulated guests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd import releases

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "ansible"


def playbook(inventory: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    environment = dict(env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "ansible.cli.playbook",
         "-i", str(inventory), str(DATA / "probe_service.yml"),
         # the guests run the default release: Ansible's facts must say its major version
         "-e", f"probe_major={releases.default().major}", *extra],
        env=environment, cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def write_inventory(path: Path, sim_root: Path, *names: str) -> Path:
    lines = ["[sim]", *names, "", "[sim:vars]", "ansible_connection=hvbsd_sim",
             f"ansible_hvbsd_sim_state_dir={sim_root}", ""]
    path.write_text("\n".join(lines))
    return path


def service_pid(guest) -> str:
    return guest.path("/var/run/hvbsd_probe.pid").read_text().strip()


def test_playbook_writes_a_template_and_restarts_an_rc_d_service(
    sim_guests, sim_root, hvbsd_env, tmp_path
):
    guests = [sim_guests("g1"), sim_guests("g2", preset="zfs")]
    inventory = write_inventory(tmp_path / "hosts.ini", sim_root, "g1", "g2")

    first = playbook(inventory, hvbsd_env, "-e", "probe_greeting=hello")
    assert first.returncode == 0, first.stdout + first.stderr
    for guest in guests:
        conf = guest.path("/usr/local/etc/hvbsd_probe.conf").read_text()
        assert "greeting=hello\n" in conf
        assert f"host={guest.name}\n" in conf
        assert guest.path("/var/run/hvbsd_probe.seen").read_text() == conf
        assert "hvbsd_probe_enable=\"YES\"" in guest.path("/etc/rc.conf").read_text()
        status = guest.exec(["service", "hvbsd_probe", "status"], text=True)
        assert status.returncode == 0, status.stdout + status.stderr
        assert not (Path("/usr/local/etc/hvbsd_probe.conf")).exists()
    pids_before = [service_pid(g) for g in guests]
    starts_before = [g.path("/var/log/hvbsd_probe.log").read_text().count("start") for g in guests]

    second = playbook(inventory, hvbsd_env, "-e", "probe_greeting=changed")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "RUNNING HANDLER [Restart hvbsd_probe]" in second.stdout
    for guest, pid, starts in zip(guests, pids_before, starts_before):
        assert "greeting=changed\n" in guest.path("/var/run/hvbsd_probe.seen").read_text()
        assert guest.path("/var/log/hvbsd_probe.log").read_text().count("start") == starts + 1
        assert service_pid(guest) != pid
        running = guest.exec(["service", "hvbsd_probe", "status"])
        assert running.returncode == 0


def test_unreachable_when_the_guest_is_not_running(sim_guests, sim_root, hvbsd_env, tmp_path):
    sim_guests("g1").stop()
    inventory = write_inventory(tmp_path / "hosts.ini", sim_root, "g1")
    result = playbook(inventory, hvbsd_env, "-e", "probe_greeting=x")
    assert result.returncode != 0
    assert "guest 'g1' is stopped" in result.stdout + result.stderr
