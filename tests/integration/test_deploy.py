"""`ansible-playbook deploy.yml` against simulated FreeBSD guests.

The real playbook and roles run through the hvbsd_sim connection. What they
leave on a guest is compared with what `hvbsd render` produces for the same
variables (rc.conf: the managed block), file by file and byte by byte.
Guests are shared within this module: each test starts by applying the
baseline variables again, which is itself the idempotence check.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.kvp.cli import archive_bytes as kvpd_archive_bytes
from hvbsd.render import render_host
from hvbsd.vss.cli import archive_bytes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DAEMON = "/usr/local/sbin/hvbsd_vssd"
MANPAGE = "/usr/local/share/man/man8/hvbsd_vssd.8"
KVPD = "/usr/local/sbin/hvbsd_kvpd"
KVPD_MANPAGE = "/usr/local/share/man/man8/hvbsd_kvpd.8"
RC_CONF = "/etc/rc.conf"
# Everything a deploy may touch; the snapshots cover all of it.
WATCHED = ("/etc", "/usr/local/etc", "/usr/local/libexec", "/usr/local/sbin",
           "/usr/local/share/man", "/boot")
HOOK = "#!/bin/sh\n# quiesce the application\nexit 0\n"

BASELINE: dict[str, Any] = {
    "hyperv_guest_mode": "lagg",
    "hyperv_guest_vf_delay": 120,
    "hyperv_guest_interfaces": [
        {"name": "hn0", "ipv4": "syncdhcp", "vfup": {"dhclient_flags": "-q"}},
        {"name": "hn1", "ipv4": "static", "ipv4_address": "10.1.0.5", "ipv4_prefix": 24},
    ],
    "hyperv_vss_exclude": ["/var/db/scratch"],
}

SNAPSHOT = r"""
import hashlib, json, os, sys
found = {}
for top in sys.argv[1:]:
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            entry = [oct(st.st_mode), st.st_uid, st.st_gid]
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as stream:
                    entry.append(hashlib.sha1(stream.read()).hexdigest())
            found[path] = entry
json.dump(found, sys.stdout)
"""


# -- helpers ------------------------------------------------------------------


class Deployer:
    """ansible-playbook deploy.yml with an inventory of guests and their variables."""

    def __init__(self, work: Path, state_dir: Path, env: dict[str, str]) -> None:
        self.work = work
        self.state_dir = state_dir
        self.env = dict(env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0")
        self.count = 0

    def run(self, host: str, variables: dict[str, Any], *extra: str
            ) -> subprocess.CompletedProcess[str]:
        return self.run_hosts({host: variables}, *extra)

    def run_hosts(self, hosts: dict[str, dict[str, Any]], *extra: str
                  ) -> subprocess.CompletedProcess[str]:
        """One run for several inventory hosts (``ansible_hvbsd_sim_guest`` picks a
        host's guest when its name is not the guest's)."""
        self.count += 1
        inventory = self.work / f"inventory-{self.count}.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {host: {
            "ansible_connection": "hvbsd_sim",
            "ansible_hvbsd_sim_state_dir": str(self.state_dir),
            **variables} for host, variables in hosts.items()}}}))
        return subprocess.run(
            [sys.executable, "-m", "ansible.cli.playbook",
             "-i", str(inventory), str(REPO / "deploy.yml"), *extra],
            env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def recap(result: subprocess.CompletedProcess[str], host: str) -> dict[str, int]:
    match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", result.stdout, re.MULTILINE)
    assert match, result.stdout + result.stderr
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def converged(result: subprocess.CompletedProcess[str], host: str) -> dict[str, int]:
    assert result.returncode == 0, result.stdout + result.stderr
    counts = recap(result, host)
    assert counts["failed"] == 0 and counts["unreachable"] == 0, result.stdout
    return counts


def snapshot(guest: Any) -> dict[str, list[Any]]:
    result = guest.exec(["/usr/local/bin/python3", "-c", SNAPSHOT, *WATCHED], text=True,
                        check=True)
    return dict(json.loads(result.stdout))


def changed_paths(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> set[str]:
    return {path for path in set(before) | set(after) if before.get(path) != after.get(path)}


def managed_block(text: str) -> str:
    begin = text.index("# BEGIN hvbsd managed block\n")
    end = text.index("# END hvbsd managed block\n") + len("# END hvbsd managed block\n")
    return text[begin:end]


def expected_files(variables: dict[str, Any]) -> dict[str, Any]:
    return render_host(variables)


def assert_guest_matches_render(guest: Any, variables: dict[str, Any]) -> None:
    """Every rendered file is on the guest byte for byte, root:wheel, with its mode."""
    for path, rendered in expected_files(variables).items():
        if rendered.block is not None:
            assert managed_block(guest.path(path).read_text()) == rendered.file_bytes().decode()
            continue
        assert guest.path(path).read_bytes() == rendered.content, path
        stat = guest.exec(["/usr/local/bin/python3", "-c",
                           "import os,sys; s=os.stat(sys.argv[1]);"
                           "print(oct(s.st_mode & 0o7777), s.st_uid, s.st_gid)", path],
                          text=True, check=True).stdout.split()
        assert stat == [oct(rendered.mode), "0", "0"], path


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two fresh guests in one state directory, and a deployer for them."""
    from hvbsd.sim import namespace
    from hvbsd.sim.guest import Guest

    reason = namespace.probe()
    if reason is not None:
        pytest.skip(f"simulated guests unavailable: {reason}")
    work = tmp_path_factory.mktemp("deploy")
    state_dir = work / "sim"
    state_dir.mkdir()
    hook = work / "10-app"
    hook.write_text(HOOK)
    env = dict(os.environ, HVBSD_SIM_HOME=str(state_dir))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    guests = {name: Guest.create(name, state_dir) for name in ("d1", "fresh")}
    try:
        yield {"guests": guests, "deploy": Deployer(work, state_dir, env), "hook": hook}
    finally:
        for guest in guests.values():
            if guest.state_dir.exists():
                guest.destroy()


def baseline(lab: dict[str, Any]) -> dict[str, Any]:
    variables = copy.deepcopy(BASELINE)
    variables["hyperv_vss_hooks"] = [{"name": "10-app", "src": str(lab["hook"])}]
    return variables


@pytest.fixture
def deployed(lab: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Guest d1 with the baseline applied (a re-run when an earlier test did it)."""
    guest, variables = lab["guests"]["d1"], baseline(lab)
    converged(lab["deploy"].run("d1", variables), "d1")
    return guest, variables


# -- tests --------------------------------------------------------------------


def test_first_run_converges_and_the_second_changes_nothing(lab):
    guest, variables = lab["guests"]["d1"], baseline(lab)
    rc_conf_before = guest.path(RC_CONF).read_text()

    first = converged(lab["deploy"].run("d1", variables), "d1")
    assert first["changed"] > 0
    second_run = lab["deploy"].run("d1", variables)
    assert converged(second_run, "d1")["changed"] == 0, second_run.stdout

    assert_guest_matches_render(guest, variables)
    # rc.conf: the block appended, every other line as it was.
    rc_conf = guest.path(RC_CONF).read_text()
    assert rc_conf.replace(managed_block(rc_conf), "") == rc_conf_before
    assert guest.path(DAEMON).read_bytes() == archive_bytes()
    assert guest.path(MANPAGE).read_bytes() == (REPO / "docs" / "hvbsd_vssd.8").read_bytes()
    assert guest.path("/usr/local/etc/hvbsd/vss.d/10-app").read_text() == HOOK
    modes = snapshot(guest)
    assert modes[DAEMON][:3] == [oct(0o100755), 0, 0]
    assert modes["/usr/local/etc/hvbsd/vss.d"][:3] == [oct(0o40755), 0, 0]
    assert modes["/usr/local/etc/hvbsd/vss.d/10-app"][:3] == [oct(0o100755), 0, 0]


def test_check_diff_on_a_fresh_guest_shows_changes_and_makes_none(lab):
    guest = lab["guests"]["fresh"]
    before = snapshot(guest)
    result = lab["deploy"].run("fresh", baseline(lab), "--check", "--diff")
    counts = converged(result, "fresh")
    assert counts["changed"] > 0
    assert "REBOOT NEEDED" in result.stdout
    assert "+hw.hn.vf_transparent=\"0\"" in result.stdout  # the diff shows the new file
    assert snapshot(guest) == before, "--check changed the guest"


def assert_refused_before_any_change(lab: dict[str, Any], cases: dict[str, dict[str, Any]]
                                     ) -> None:
    """Each case (expected message -> bad variables) as its own inventory host on
    guest "fresh", in one run: every host fails, nothing changes."""
    guest = lab["guests"]["fresh"]
    before = snapshot(guest)
    hosts = {f"case{index}": {**baseline(lab), **bad, "ansible_hvbsd_sim_guest": "fresh"}
             for index, bad in enumerate(cases.values())}
    result = lab["deploy"].run_hosts(hosts)
    assert result.returncode != 0, result.stdout
    for index, expected in enumerate(cases):
        failures = re.findall(rf"^(?:fatal|failed): \[case{index}\].*$", result.stdout,
                              re.MULTILINE)
        assert any(expected in line for line in failures), (expected, result.stdout)
        assert recap(result, f"case{index}")["changed"] == 0
    assert snapshot(guest) == before


def test_bad_variables_stop_the_run_before_anything_changes(lab):
    assert_refused_before_any_change(lab, {
        "hyperv_guest_interfaces[0].name": {"hyperv_guest_interfaces": [{"name": "hn0;reboot"}]},
        "hyperv_guest_modee: unknown variable": {"hyperv_guest_modee": "lagg"},
        "hyperv_vss_zfs": {"hyperv_vss_zfs": "snapshot"},
    })


def test_an_upgrade_changes_exactly_the_files_it_affects(lab, deployed):
    guest, old = deployed
    for change in ({"hyperv_guest_vf_delay": 30}, {"hyperv_vss_debug": True},
                   {"hyperv_guest_kvp": "off"}):
        new = {**old, **change}
        old_files, new_files = expected_files(old), expected_files(new)
        affected = {path for path in set(old_files) | set(new_files)
                    if old_files.get(path) != new_files.get(path)}
        if change.get("hyperv_guest_kvp", "hvbsd") != "hvbsd":
            affected |= {KVPD, KVPD_MANPAGE}  # the daemon goes with its rc.d script
        before = snapshot(guest)
        converged(lab["deploy"].run("d1", new), "d1")
        assert changed_paths(before, snapshot(guest)) == affected, change
        assert_guest_matches_render(guest, new)
        old = new
    converged(lab["deploy"].run("d1", baseline(lab)), "d1")


def test_each_kvp_choice_installs_its_daemon_and_rules_and_removes_the_others(lab, deployed):
    """hvbsd: hvbsd_kvpd (the controller's bundle), its manual page, rc.d script and
    flags, and devd rules that start it; stock and off: none of those files, and the
    devd rules start hv_kvp_daemon or nothing."""
    guest, variables = deployed
    assert variables.get("hyperv_guest_kvp", "hvbsd") == "hvbsd"  # deployed: hvbsd already
    for choice in ("stock", "off", "hvbsd"):
        chosen = {**variables, "hyperv_guest_kvp": choice}
        converged(lab["deploy"].run("d1", chosen), "d1")
        assert_guest_matches_render(guest, chosen)
        wanted = choice == "hvbsd"
        for path in (KVPD, KVPD_MANPAGE, "/usr/local/etc/rc.d/hvbsd_kvpd",
                     "/etc/rc.conf.d/hvbsd_kvpd"):
            assert guest.path(path).exists() is wanted, (choice, path)
        rules = guest.path("/usr/local/etc/devd/hvbsd.conf").read_text()
        assert ("service hvbsd_kvpd quietstart" in rules) is wanted
        assert ('action "/usr/sbin/hv_kvp_daemon"' in rules) is (choice == "stock")
        if wanted:
            assert guest.path(KVPD).read_bytes() == kvpd_archive_bytes()
            assert guest.path(KVPD_MANPAGE).read_bytes() == \
                (REPO / "docs" / "hvbsd_kvpd.8").read_bytes()
            assert snapshot(guest)[KVPD][:3] == [oct(0o100755), 0, 0]
            flags = guest.path("/etc/rc.conf.d/hvbsd_kvpd").read_text()
            assert 'hvbsd_kvpd_flags="--lookup hvbsd --set-ip managed"' in flags
    # back on hvbsd after removing it: converged (the other choices' second runs are
    # the first test's idempotence on the same role code)
    again = lab["deploy"].run("d1", chosen)
    assert converged(again, "d1")["changed"] == 0, again.stdout


def test_removing_an_interfaces_vfup_settings_removes_its_script(lab, deployed):
    guest, variables = deployed
    script = "/usr/local/libexec/hvbsd/hyperv_vfup.hn0"
    assert guest.path(script).exists()
    without = copy.deepcopy(variables)
    del without["hyperv_guest_interfaces"][0]["vfup"]
    before = snapshot(guest)
    converged(lab["deploy"].run("d1", without), "d1")
    assert not guest.path(script).exists()
    assert changed_paths(before, snapshot(guest)) == {script}
    assert_guest_matches_render(guest, without)


def test_switching_to_transparent_removes_the_lagg_files(lab, deployed):
    guest, variables = deployed
    transparent = {**variables, "hyperv_guest_mode": "transparent"}
    result = lab["deploy"].run("d1", transparent)
    converged(result, "d1")
    assert "REBOOT NEEDED" in result.stdout
    left = sorted(p.name for p in guest.path("/usr/local/libexec/hvbsd").iterdir())
    assert left == []
    assert_guest_matches_render(guest, transparent)
    converged(lab["deploy"].run("d1", baseline(lab)), "d1")


# -- hostile values and interrupted runs --------------------------------------

CANARY = "/tmp/hvbsd-canary"
PAYLOAD = f"'$(touch {CANARY})'"


def test_values_of_the_wrong_yaml_type_stop_the_run_before_anything_changes(lab):
    """Ansible's argument-spec validator coerces these to strings; the roles'
    own check refuses them, before any task changes the guest."""
    assert_refused_before_any_change(lab, {
        "hyperv_guest_interfaces[0].name: must be a string, not a mapping":
            {"hyperv_guest_interfaces": [{"name": {PAYLOAD: 1}}]},
        "hyperv_guest_interfaces[0].name: must be a string, not bytes":
            {"hyperv_guest_interfaces": [{"name": PAYLOAD.encode()}]},
        "hyperv_vss_state_file: must be a string, not bytes":
            {"hyperv_vss_state_file": PAYLOAD.encode()},
        "hyperv_guest_vf_drivers: must be a list, not a string":
            {"hyperv_guest_vf_drivers": "mce,mlxen"},
        "hyperv_vss_freeze_timeout: must be an integer, not a boolean":
            {"hyperv_vss_freeze_timeout": True},
        "hyperv_guest_interfaces[0].name: is null":
            {"hyperv_guest_interfaces": [{"name": None}]},
        "hyperv_vss_hooks_dir: '/tmp' is a system directory":
            {"hyperv_vss_hooks_dir": "/tmp"},
    })
    assert not lab["guests"]["fresh"].path(CANARY).exists()
    assert not Path(CANARY).exists()


def test_a_hook_directory_not_roots_alone_is_refused_and_left_as_it_is(lab, deployed):
    guest, variables = deployed
    shared = "/usr/local/etc/hvbsd/shared.d"
    guest.exec(["/bin/sh", "-c", f"mkdir -p {shared} && chmod 1777 {shared}"], check=True)
    result = lab["deploy"].run("d1", {**variables, "hyperv_vss_hooks_dir": shared})
    assert result.returncode != 0
    assert "is not a directory that only root can write to" in result.stdout, result.stdout
    assert snapshot(guest)[shared][0] == oct(0o41777)
    guest.exec(["/bin/sh", "-c", f"rmdir {shared}"], check=True)


def _handler_ran(result: subprocess.CompletedProcess[str], handler: str, host: str) -> bool:
    return re.search(rf"RUNNING HANDLER \[{re.escape(handler)}\] \**\nchanged: \[{host}\]",
                     result.stdout) is not None


def test_a_failed_run_leaves_its_restarts_to_the_next_run(lab, deployed):
    """The roles' handlers never run in a play whose host failed after the roles
    changed files; the next deploy.yml run restarts devd and the daemon anyway."""
    guest, variables = deployed
    failing = lab["deploy"].work / "fails-after-roles.yml"
    failing.write_text(yaml.safe_dump([{
        "name": "Deploy, then fail before the handlers", "hosts": "all", "gather_facts": False,
        "roles": [{"role": str(REPO / "roles" / "hyperv_vss")},
                  {"role": str(REPO / "roles" / "hyperv_guest")}],
        "tasks": [{"name": "Fail", "ansible.builtin.fail": {"msg": "stopped early"}}]}]))
    changed = {**variables, "hyperv_guest_kvp": "off", "hyperv_vss_debug": True}
    deploy = lab["deploy"]
    inventory_run = deploy.run("d1", changed, "--list-hosts")  # writes the inventory
    assert inventory_run.returncode == 0
    inventory = deploy.work / f"inventory-{deploy.count}.yml"
    first = subprocess.run(
        [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory), str(failing)],
        env=deploy.env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode != 0 and "stopped early" in first.stdout, first.stdout
    assert "RUNNING HANDLER" not in first.stdout
    assert_guest_matches_render(guest, changed)

    again = deploy.run("d1", changed)
    converged(again, "d1")
    assert _handler_ran(again, "hyperv_guest : Restart devd", "d1"), again.stdout
    # These guests have no VSS device, so the handler is notified and skips the restart.
    assert "RUNNING HANDLER [hyperv_vss : Restart hvbsd_vssd]" in again.stdout, again.stdout
    assert list(guest.path("/var/db/hvbsd").iterdir()) == []
    third = deploy.run("d1", changed)
    assert converged(third, "d1")["changed"] == 0, third.stdout
    converged(deploy.run("d1", baseline(lab)), "d1")


def test_an_interrupted_run_leaves_its_restarts_to_the_next_run(lab, deployed):
    """^C (SIGINT) to ansible-playbook once devd's rules are installed."""
    import signal

    guest, variables = deployed
    changed = {**variables, "hyperv_guest_kvp": "off"}
    deploy = lab["deploy"]
    assert deploy.run("d1", changed, "--list-hosts").returncode == 0
    inventory = deploy.work / f"inventory-{deploy.count}.yml"
    process = subprocess.Popen(
        [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory),
         str(REPO / "deploy.yml")], env=deploy.env, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    installing = False
    for line in process.stdout:
        seen.append(line)
        if "Install /usr/local/etc/devd/hvbsd.conf]" in line:
            installing = True
        elif installing and line.startswith("changed: [d1]"):
            process.send_signal(signal.SIGINT)
            break
    # ansible-playbook now and then lets a ^C pass (its handler raises
    # KeyboardInterrupt wherever the main thread is): press it again, as a user would
    for _ in range(60):
        try:
            rest, _ = process.communicate(timeout=2)
            break
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
    else:
        process.kill()
        rest, _ = process.communicate()
    assert installing, "".join(seen)
    assert process.returncode != 0, "".join(seen) + rest
    assert guest.path("/var/db/hvbsd/pending.hyperv_guest.devd").exists()

    again = deploy.run("d1", changed)
    converged(again, "d1")
    assert _handler_ran(again, "hyperv_guest : Restart devd", "d1"), again.stdout
    assert not guest.path("/var/db/hvbsd/pending.hyperv_guest.devd").exists()
    converged(deploy.run("d1", baseline(lab)), "d1")


def test_from_package_installs_hvbsd_vssd_with_pkg_and_copies_none_of_its_files(lab):
    """The port's files belong to pkg: the role installs the package and leaves the
    daemon, its rc.d script and manual page to it; settings and hooks are still its own."""
    guest = lab["guests"]["fresh"]
    variables = {**baseline(lab), "hyperv_vss_from_package": True}
    converged(lab["deploy"].run("fresh", variables), "fresh")
    for package in ("hvbsd-vssd", "hvbsd-kvpd"):
        installed = guest.exec(["pkg", "info", "-e", package], check=False)
        assert installed.returncode == 0, f"pkg install {package} ran"
    for owned_by_pkg in (DAEMON, MANPAGE, "/usr/local/etc/rc.d/hvbsd_vssd", KVPD, KVPD_MANPAGE,
                         "/usr/local/etc/rc.d/hvbsd_kvpd"):
        assert not guest.path(owned_by_pkg).exists(), owned_by_pkg
    assert guest.path("/etc/rc.conf.d/hvbsd_vssd").is_file()
    assert guest.path("/etc/rc.conf.d/hvbsd_kvpd").is_file()
    assert guest.path("/usr/local/etc/hvbsd/vss.d/10-app").read_text() == HOOK
    again = lab["deploy"].run("fresh", variables)
    assert converged(again, "fresh")["changed"] == 0, again.stdout


def test_an_installed_package_is_never_overwritten(lab, deployed):
    guest, variables = deployed
    guest.exec(["pkg", "install", "-y", "hvbsd-vssd"], check=True)
    packaged = b"#!/usr/local/bin/python3.11\n# the package's own daemon\n"
    guest.path(DAEMON).write_bytes(packaged)
    converged(lab["deploy"].run("d1", variables), "d1")
    assert guest.path(DAEMON).read_bytes() == packaged
