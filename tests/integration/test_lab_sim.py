"""`hvbsd lab run` on the sim provider, end to end: real guests, the real deploy.yml,
the checks of tests/infra, the report; and what happens when a check fails."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hvbsd import releases

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def lab(env, cwd, *argv, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hvbsd", "lab", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def lab_env(hvbsd_env, tmp_path):
    from hvbsd.sim import namespace

    reason = namespace.probe()
    if reason is not None:
        pytest.skip(f"simulated guests unavailable: {reason}")
    env = dict(hvbsd_env, HVBSD_LAB_HOME=str(tmp_path / "lab"))
    yield env
    lab(env, tmp_path, "down", "--progress", "quiet")


def nothing_left(lab_home: Path) -> None:
    mounts = Path("/proc/mounts").read_text()
    assert str(lab_home) not in mounts
    holders = subprocess.run(["pgrep", "-f", str(lab_home)], capture_output=True, text=True,
                             check=False)
    assert holders.stdout.strip() == "", holders.stdout
    assert not (lab_home / "sim").exists()


@pytest.mark.parametrize("release", [r.name for r in releases.newest_per_major()])
def test_lab_run_two_guests_passes_and_writes_the_report(lab_env, tmp_path, release):
    """CI's lab runs: the newest release of each supported major version."""
    report = tmp_path / "report"
    result = lab(lab_env, tmp_path, "run", "--release", release, "--guests", "2",
                 "--report", str(report))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"report: {report / 'summary.html'}" in result.stdout
    for guest in ("lab1", "lab2"):
        suite = ET.parse(report / f"junit-{guest}.xml").getroot()
        cases = list(suite.iter("testcase"))
        assert len(cases) >= 15
        assert not [c for c in cases if c.find("failure") is not None
                    or c.find("error") is not None]
        names = {c.get("name", "").split("[")[0] for c in cases}
        assert {"test_backup_succeeds_and_blocks_writes_while_frozen",
                "test_vf_attach_builds_a_failover_lagg_hn_first_vf_active_address_moved",
                "test_vf_detach_keeps_the_address_on_the_lagg_via_hn",
                "test_vf_reattach_adds_the_vf_to_the_same_lagg",
                "test_migrate_lands_on_another_nic_family_mce_to_mana_and_keeps_the_address",
                "test_vss_daemon_reports_thawed"} <= names
        svgs = sorted(p.name for p in (report / "timelines").glob(f"{guest}-*.svg"))
        assert [s.split("-", 2)[2] for s in svgs] == [
            "backup.svg", "vf-attach.svg", "vf-detach.svg", "vf-attach.svg", "migrate.svg"]
        for svg in svgs:
            ET.parse(report / "timelines" / svg)  # well-formed
    summary = (report / "summary.md").read_text()
    assert "**Result: PASSED**" in summary
    for step in ("| create |", "| deploy |", "| reboot |", "| check |"):
        assert step in summary
    page = (report / "summary.html").read_text()
    assert page.count("<svg") == 10 and "Result: PASSED" in page
    # what the run was: the variables file, the versions, each guest's files, a legend
    import importlib.metadata

    from hvbsd import __version__

    default_vars = str(ROOT / "lab" / "vars" / "default.yml")
    for text in (summary, page):
        assert default_vars in text.replace("\\_", "_")
        assert __version__ in text and importlib.metadata.version("ansible-core") in text
        assert "Reading the timelines" in text
    for guest in ("lab1", "lab2"):
        assert f"[check output](checks-{guest}.txt)" in summary
        assert f'href="checks-{guest}.txt"' in page
        assert re.search(r"\b\d+ passed in ", (report / f"checks-{guest}.txt").read_text())
    assert "[deploy log](ansible.log)" in summary and 'href="ansible.log"' in page
    assert "PLAY RECAP" in (report / "ansible.log").read_text()
    shown = re.search(r"\| lab1 \| sim \| (\S+) \|", summary)
    assert shown and shown.group(1) == f"{release}-RELEASE", summary
    assert f"| FreeBSD release | {release} |" in summary
    # run takes the guests down: nothing left running or mounted
    nothing_left(tmp_path / "lab")


def test_a_failing_check_fails_the_run_and_the_report_names_it(lab_env, tmp_path):
    report = tmp_path / "report"
    up = lab(lab_env, tmp_path, "up", "--guests", "t1", "--progress", "quiet")
    assert up.returncode == 0, up.stderr
    provision = lab(lab_env, tmp_path, "provision", "--progress", "quiet")
    assert provision.returncode == 0, provision.stderr
    state = json.loads((tmp_path / "lab" / "lab.json").read_text())
    assert [t["name"] for t in state["targets"]] == ["t1"]
    from hvbsd.sim.guest import Guest

    guest = Guest("t1", tmp_path / "lab" / "sim")
    guest.exec(["sh", "-c", "echo '# tampered' >> /usr/local/etc/devd/hvbsd.conf"], check=True)

    result = lab(lab_env, tmp_path, "check", "--report", str(report), "--progress", "quiet")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "CHECKS FAILED" in result.stdout
    summary = (report / "summary.md").read_text()
    assert "**Result: FAILED**" in summary
    assert "`test_deployed_files::test_every_rendered_file_is_in_place_byte_for_byte`" in summary
    assert "hvbsd.conf: content differs from hvbsd render" in summary
    assert "test_every_rendered_file_is_in_place_byte_for_byte" in (
        report / "summary.html").read_text()

    status = lab(lab_env, tmp_path, "status")
    assert "t1: running" in status.stdout
    down = lab(lab_env, tmp_path, "down", "--progress", "quiet")
    assert down.returncode == 0, down.stderr
    assert "no guests" in lab(lab_env, tmp_path, "status").stdout
    nothing_left(tmp_path / "lab")


def test_a_run_that_fails_at_deploy_keeps_the_deploy_log_in_the_report(lab_env, tmp_path):
    report = tmp_path / "report"
    broken = dict(lab_env, ANSIBLE_STRATEGY="no-such-strategy")  # ansible-playbook refuses it

    result = lab(broken, tmp_path, "run", "--guests", "1", "--report", str(report),
                 "--progress", "quiet")

    assert result.returncode == 3, result.stdout + result.stderr
    kept = report / "ansible.log"
    assert f"full output in {kept}" in result.stderr
    assert str(tmp_path / "lab" / "ansible.log") not in result.stderr
    # the run's down has happened, and the log it pointed at is still there
    nothing_left(tmp_path / "lab")
    assert not (tmp_path / "lab" / "ansible.log").exists()
    assert "no-such-strategy" in kept.read_text()
    summary = (report / "summary.md").read_text()
    assert "deploy failed" in summary and "[deploy log](ansible.log)" in summary
    assert 'href="ansible.log"' in (report / "summary.html").read_text()
