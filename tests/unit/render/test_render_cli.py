"""`hvbsd render` as a user runs it: bad input, --check, atomic writes, inventories."""

from __future__ import annotations

import os
import stat

import pytest
import yaml


def _tree(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file())


def _vars_file(tmp_path, data, name="host.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_render_writes_the_guest_tree_with_modes(hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    result = hvbsd_render("--vars", str(root / "examples/azure-lagg.yml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    vfup = out / "usr/local/libexec/hvbsd/hyperv_vfup"
    assert stat.S_IMODE(vfup.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "usr/local/etc/devd/hvbsd.conf").stat().st_mode) == 0o644
    rc_conf = (out / "etc/rc.conf").read_text().splitlines()
    assert rc_conf[0] == "# BEGIN hvbsd managed block"
    assert rc_conf[-1] == "# END hvbsd managed block"
    assert "hyperv_vf_delay=120" in rc_conf
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"


def test_check_exits_0_when_equal_and_1_with_a_diff_when_not(hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    example = str(root / "examples/azure-lagg.yml")
    assert hvbsd_render("--vars", example, "--out", str(out)).returncode == 0
    same = hvbsd_render("--vars", example, "--out", str(out), "--check")
    assert (same.returncode, same.stdout) == (0, "")
    rc_conf = out / "etc/rc.conf"
    rc_conf.write_text(rc_conf.read_text().replace("hyperv_vf_delay=120", "hyperv_vf_delay=5"))
    before = rc_conf.read_bytes()
    changed = hvbsd_render("--vars", example, "--out", str(out), "--check")
    assert changed.returncode == 1
    assert "--- a/etc/rc.conf" in changed.stdout
    assert "-hyperv_vf_delay=5" in changed.stdout and "+hyperv_vf_delay=120" in changed.stdout
    assert rc_conf.read_bytes() == before, "--check must not write"


def test_check_reports_missing_files_and_mode_changes(hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    example = str(root / "examples/azure-lagg.yml")
    missing = hvbsd_render("--vars", example, "--out", str(out), "--check")
    assert missing.returncode == 1 and "--- /dev/null" in missing.stdout
    assert not out.exists()
    hvbsd_render("--vars", example, "--out", str(out))
    os.chmod(out / "usr/local/libexec/hvbsd/hyperv_vfup", 0o644)
    mode = hvbsd_render("--vars", example, "--out", str(out), "--check")
    assert mode.returncode == 1
    assert "mode usr/local/libexec/hvbsd/hyperv_vfup: 0644 -> 0755" in mode.stdout


def test_rendering_twice_gives_identical_bytes(hvbsd_render, root, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        hvbsd_render("--vars", str(root / "examples/static-dual-stack.yml"), "--out", str(out))
    assert _tree(first) == _tree(second)
    for relative in _tree(first):
        assert (first / relative).read_bytes() == (second / relative).read_bytes()


BAD_INPUT = [
    ({"hyperv_guest_interfaces": [{"name": "hn0;reboot"}]},
     ["hyperv_guest_interfaces[0].name: contains ';'"]),
    ({"hyperv_guest_interfaces": [{"name": "../x"}]},
     ["hyperv_guest_interfaces[0].name: '../x' is not an interface name"]),
    ({"hyperv_guest_interfaces": [{"name": "hn" + "1" * 38}]},
     ["hyperv_guest_interfaces[0].name: 'hn1111", "longer than 15 characters"]),
    ({"hyperv_guest_vf_dealy": 5, "hyperv_vss_zfs_mode": "sync"},
     ["hyperv_guest_vf_dealy: unknown variable for role hyperv_guest",
      "hyperv_vss_zfs_mode: unknown variable for role hyperv_vss"]),
    ({"hyperv_guest_vf_delay": "soon", "hyperv_vss_debug": "maybe",
      "hyperv_guest_interfaces": {"name": "hn0"}},
     ["hyperv_guest_vf_delay: must be an integer, not a string",
      "hyperv_vss_debug: must be a boolean (true or false), not a string",
      "hyperv_guest_interfaces: must be a list, not a mapping"]),
    ({"hyperv_guest_mode": "bonded", "hyperv_guest_interfaces": [{"name": "hn0", "ipv4": "auto",
                                                                 "speed": 10}]},
     ["hyperv_guest_mode: 'bonded' is not one of lagg, transparent",
      "hyperv_guest_interfaces[0].ipv4: 'auto' is not one of dhcp, syncdhcp, static",
      "hyperv_guest_interfaces[0]: unknown key 'speed'"]),
    ({"hyperv_guest_interfaces": [{"name": "hn0"}, {"name": "hn0"},
                                  {"name": "hn1", "lagg": "lagg0"}]},
     ["hyperv_guest_interfaces[1].name: 'hn0' is already used by hyperv_guest_interfaces[0].name",
      "hyperv_guest_interfaces[2].lagg: lagg 'lagg0' is already used"]),
    ({"hyperv_guest_interfaces": [
        {"name": "hn0", "ipv4": "static", "ipv4_address": "10.0.0.300", "ipv4_prefix": 33},
        {"name": "hn1", "ipv4": "static", "ipv6": "static", "ipv6_address": "2001:db8::g"}]},
     ["hyperv_guest_interfaces[0].ipv4_address: '10.0.0.300' is not an IPv4 address",
      "hyperv_guest_interfaces[0].ipv4_prefix: 33 is not between 0 and 32",
      "hyperv_guest_interfaces[1].ipv4_address: required when ipv4 is static",
      "hyperv_guest_interfaces[1].ipv6_address: '2001:db8::g' is not an IPv6 address"]),
    ({"hyperv_guest_interfaces": [{"name": "hn0", "options": "mtu 9000 'x'"},
                                  {"name": "hn1", "options": "up $(reboot)"},
                                  {"name": "hn2", "options": "up `reboot`"},
                                  {"name": "hn3", "options": "up\nreboot"},
                                  {"name": "hn4", "options": 'up "x"'},
                                  {"name": "hn5", "vfup": {"lagg_options": "mtu 1500; reboot"}}],
      "hyperv_vss_hooks_dir": "/etc/$HOME"},
     ["hyperv_guest_interfaces[0].options: contains \"'\"",
      "hyperv_guest_interfaces[1].options: contains '$', '(', ')'",
      "hyperv_guest_interfaces[2].options: contains '`'",
      "hyperv_guest_interfaces[3].options: contains '\\n'",
      "hyperv_guest_interfaces[4].options: contains '\"'",
      "hyperv_guest_interfaces[5].vfup.lagg_options: contains ';'",
      "hyperv_vss_hooks_dir: contains '$'"]),
]


@pytest.mark.parametrize(("variables", "expected"), BAD_INPUT,
                         ids=["hostile-name", "path-name", "40-chars", "unknown-vars",
                              "wrong-types", "bad-choices", "duplicates", "bad-addresses",
                              "shell-metacharacters"])
def test_bad_input_exits_2_listing_every_problem_and_writes_nothing(
        hvbsd_render, tmp_path, variables, expected):
    out = tmp_path / "out"
    result = hvbsd_render("--vars", str(_vars_file(tmp_path, variables)), "--out", str(out))
    assert result.returncode == 2, result.stderr
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} missing from:\n{result.stderr}"
    assert "nothing written" in result.stderr
    assert not out.exists()


def test_bad_input_leaves_an_existing_tree_untouched(hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    hvbsd_render("--vars", str(root / "examples/azure-lagg.yml"), "--out", str(out))
    before = {p: (out / p).read_bytes() for p in _tree(out)}
    bad = _vars_file(tmp_path, {"hyperv_guest_mode": "lagg", "hyperv_guest_vf_delay": 1})
    result = hvbsd_render("--vars", str(bad), "--out", str(out))
    assert result.returncode == 2
    assert "hyperv_guest_vf_delay: 1 is not between 2 and 3600" in result.stderr
    assert {p: (out / p).read_bytes() for p in _tree(out)} == before


@pytest.mark.parametrize(("content", "message"), [
    ("- just\n- a list\n", ": expected a mapping of variables, found a list"),
    ("hyperv_guest_mode: [unclosed\n", ":2: not valid YAML"),
])
def test_a_vars_file_that_is_not_a_mapping_is_refused(hvbsd_render, tmp_path, content, message):
    path = _vars_file(tmp_path, content)
    result = hvbsd_render("--vars", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{path}{message}" in result.stderr


def test_a_missing_vars_file_is_named_in_the_error(hvbsd_render, tmp_path):
    missing = tmp_path / "nope.yml"
    result = hvbsd_render("--vars", str(missing), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and f"{missing}: cannot read" in result.stderr


def test_inventory_renders_each_host_with_group_and_host_vars(hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    result = hvbsd_render("-i", str(root / "examples/inventory.yml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["build1", "db1", "web1", "web2"]
    assert "hyperv_vf_delay=120" in (out / "web1/etc/rc.conf").read_text()
    assert "ifconfig_hn1='inet 10.1.0.5/24'" in (out / "db1/etc/rc.conf").read_text()
    assert "ifconfig_hn1" not in (out / "web2/etc/rc.conf").read_text()
    assert not (out / "build1/usr/local/libexec/hvbsd").exists()
    flags = (out / "db1/etc/rc.conf.d/hvbsd_vssd").read_text()
    assert "--exclude /var/db/scratch" in flags and "--hook-timeout 10" in flags


def test_inventory_limit_renders_only_matching_hosts(hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    result = hvbsd_render("-i", str(root / "examples/inventory.yml"), "--out", str(out),
                          "--limit", "web*")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["web1", "web2"]
    none = hvbsd_render("-i", str(root / "examples/inventory.yml"), "--out", str(out),
                        "--limit", "nosuchhost")
    assert none.returncode == 2 and "no host matches --limit 'nosuchhost'" in none.stderr


def test_one_bad_host_stops_the_whole_inventory(hvbsd_render, root, tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "good": {"hyperv_guest_mode": "lagg"},
        "bad": {"hyperv_guest_interfaces": [{"name": "hn0;reboot"}]}}}}))
    out = tmp_path / "out"
    result = hvbsd_render("-i", str(inventory), "--out", str(out))
    assert result.returncode == 2
    assert "host bad: 1 problem(s)" in result.stderr
    assert "hyperv_guest_interfaces[0].name: contains ';'" in result.stderr
    assert not out.exists()


def test_render_replaces_a_changed_file_by_rename_and_leaves_the_others(
        hvbsd_render, root, tmp_path):
    out = tmp_path / "out"
    example = str(root / "examples/azure-lagg.yml")
    assert hvbsd_render("--vars", example, "--out", str(out)).returncode == 0
    rc_conf = out / "etc" / "rc.conf"
    wanted = rc_conf.read_bytes()
    rc_conf.write_text("edited by hand\n")
    inodes = {p: p.stat().st_ino for p in out.rglob("*")}
    assert hvbsd_render("--vars", example, "--out", str(out)).returncode == 0
    assert rc_conf.read_bytes() == wanted
    assert rc_conf.stat().st_ino != inodes[rc_conf], "replaced by rename, not rewritten"
    assert {p: p.stat().st_ino for p in out.rglob("*") if p != rc_conf} == {
        p: inode for p, inode in inodes.items() if p != rc_conf}
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
