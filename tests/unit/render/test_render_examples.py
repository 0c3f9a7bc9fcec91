"""Each example renders to the expected files: golden copies, valid shell, parsable devd."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hvbsd.render import load_manifest, render_host, role_defaults

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HVBSD_UPDATE_GOLDEN") == "1"


def _scripts(files):
    return {path: f for path, f in files.items() if f.content.startswith(b"#!/bin/sh")
            or path.endswith(".subr")}


def test_every_example_renders_the_files_its_mode_needs(example, load_example):
    files = render_host(load_example(example))
    assert "/usr/local/etc/devd/hvbsd.conf" in files
    assert "/etc/rc.conf" in files
    assert "/boot/loader.conf.d/hvbsd.conf" in files
    lagg = load_example(example).get("hyperv_guest_mode") == "lagg"
    assert ("/usr/local/libexec/hvbsd/hyperv_vfup" in files) is lagg
    assert ("/usr/local/libexec/hvbsd/hyperv_vfattach" in files) is lagg
    loader = files["/boot/loader.conf.d/hvbsd.conf"].content.decode()
    assert f'hw.hn.vf_transparent="{0 if lagg else 1}"' in loader


def test_examples_match_their_golden_files(example, load_example):
    files = render_host(load_example(example))
    golden_dir = GOLDEN / example
    if UPDATE:
        shutil.rmtree(golden_dir, ignore_errors=True)
        for path, rendered in files.items():
            target = golden_dir / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rendered.file_bytes())
    expected = {"/" + p.relative_to(golden_dir).as_posix(): p.read_bytes()
                for p in golden_dir.rglob("*") if p.is_file()}
    assert expected, f"no golden files for {example}; run with HVBSD_UPDATE_GOLDEN=1"
    assert sorted(files) == sorted(expected)
    for path, rendered in files.items():
        assert rendered.file_bytes() == expected[path], f"{example}: {path} differs from golden"


def test_rendered_scripts_pass_sh_n_and_shellcheck(example, load_example, tmp_path):
    scripts = _scripts(render_host(load_example(example)))
    assert scripts, "every example renders at least the rc.d script"
    for path, rendered in scripts.items():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rendered.content)
        syntax = subprocess.run(["sh", "-n", str(target)], capture_output=True, text=True)
        assert syntax.returncode == 0, f"{path}: {syntax.stderr}"
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: pip install -e '.[test]'"
    files = [str(p) for p in sorted(tmp_path.rglob("*")) if p.is_file()]
    result = subprocess.run([shellcheck, "-s", "sh", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_static_dual_stack_gets_its_own_vfup_script_only_for_hn1(load_example):
    files = render_host(load_example("static-dual-stack"))
    own = [p for p in files if p.startswith("/usr/local/libexec/hvbsd/hyperv_vfup.")]
    assert own == ["/usr/local/libexec/hvbsd/hyperv_vfup.hn1"]
    text = files[own[0]].content.decode()
    assert "hvbsd_lagg_options='mtu 4000'" in text
    assert "hvbsd_vfup hn1" in text


def test_interface_defaults_in_templates_match_the_spec_defaults():
    spelled_out = {"name": "hn0", "lagg": "lagg0", "ipv4": "dhcp", "ipv6": "none",
                   "ipv6_prefix": 64, "options": ""}
    implicit = render_host({"hyperv_guest_mode": "lagg",
                            "hyperv_guest_interfaces": [{"name": "hn0"}]})
    explicit = render_host({"hyperv_guest_mode": "lagg",
                            "hyperv_guest_interfaces": [spelled_out]})
    assert {p: f.content for p, f in implicit.items()} == {
        p: f.content for p, f in explicit.items()}


def test_role_defaults_equal_the_argument_spec_defaults(root):
    defaults = role_defaults()
    for role in ("hyperv_guest", "hyperv_vss"):
        spec = yaml.safe_load((root / "roles" / role / "meta" / "argument_specs.yml").read_text())
        options = spec["argument_specs"]["main"]["options"]
        role_file = yaml.safe_load((root / "roles" / role / "defaults" / "main.yml").read_text())
        assert sorted(role_file) == sorted(options), role
        for name, option in options.items():
            assert option["default"] == defaults[name], name


def test_manifest_lists_existing_templates_with_valid_restarts(root):
    manifest = load_manifest()
    for output in manifest.outputs:
        assert (root / "templates" / output.template).is_file(), output.template
        assert output.restart in {"devd", "hvbsd_vssd", "hvbsd_kvpd", "reboot", "none"}, \
            output.name
        assert output.role in {"hyperv_guest", "hyperv_vss"}, output.name
        assert output.path.startswith("/"), output.name


@pytest.mark.parametrize("mode", ["lagg", "transparent"])
def test_vss_choice_decides_whether_the_daemon_files_exist(mode):
    for choice, wanted in (("hvbsd", True), ("stock", False), ("none", False)):
        files = render_host({"hyperv_guest_mode": mode, "hyperv_guest_vss_daemon": choice})
        assert ("/usr/local/etc/rc.d/hvbsd_vssd" in files) is wanted
        assert ("/etc/rc.conf.d/hvbsd_vssd" in files) is wanted


@pytest.mark.parametrize("mode", ["lagg", "transparent"])
def test_kvp_choice_decides_whether_the_kvpd_files_exist(mode):
    for choice, wanted in (("hvbsd", True), ("stock", False), ("off", False)):
        files = render_host({"hyperv_guest_mode": mode, "hyperv_guest_kvp": choice})
        assert ("/usr/local/etc/rc.d/hvbsd_kvpd" in files) is wanted
        assert ("/etc/rc.conf.d/hvbsd_kvpd" in files) is wanted
        if wanted:
            flags = files["/etc/rc.conf.d/hvbsd_kvpd"].content.decode()
            assert 'hvbsd_kvpd_flags="--lookup hvbsd --set-ip managed"' in flags


def test_kvp_choices_outside_the_spec_are_refused_before_rendering():
    from hvbsd.render.engine import validate

    for bad in ({"hyperv_guest_kvp": "hvbsd; reboot"}, {"hyperv_guest_kvp": True},
                {"hyperv_vss_kvp_set_ip": "$(reboot)"}, {"hyperv_vss_kvp_set_ip": ["managed"]}):
        problems = validate(bad)
        assert problems and all(p.startswith(next(iter(bad))) for p in problems), problems


def test_kvp_is_hvbsd_by_default_in_both_modes():
    for mode in ("lagg", "transparent"):
        assert "/usr/local/etc/rc.d/hvbsd_kvpd" in render_host({"hyperv_guest_mode": mode})


def test_kvp_set_ip_off_reaches_the_daemon_flags():
    files = render_host({"hyperv_vss_kvp_set_ip": "off", "hyperv_vss_debug": True})
    assert 'hvbsd_kvpd_flags="--lookup hvbsd --set-ip off -d"' in \
        files["/etc/rc.conf.d/hvbsd_kvpd"].content.decode()


def test_role_defaults_are_the_callers_own_copy():
    first = role_defaults()
    first["hyperv_guest_interfaces"].append({"name": "hn9"})
    first["hyperv_guest_mode"] = "changed"
    assert role_defaults() != first
