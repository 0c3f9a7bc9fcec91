"""The hostile inputs that once rendered (or crashed) are refused: exit 2, a clear
message, nothing written."""

from __future__ import annotations

import base64
import textwrap

import pytest

from hvbsd.render import validate

PAYLOAD = "'$(touch /tmp/x)'"
BINARY = "!!binary " + base64.b64encode(PAYLOAD.encode()).decode()


def _refused(hvbsd_render, tmp_path, text: str, *expected: str) -> str:
    vars_file = tmp_path / "host.yml"
    vars_file.write_text(textwrap.dedent(text))
    out = tmp_path / "out"
    result = hvbsd_render("--vars", str(vars_file), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert not out.exists()
    return result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("""\
     hyperv_guest_interfaces:
       - name: {"'$(touch /tmp/x)'": 1}
     """, "hyperv_guest_interfaces[0].name: must be a string, not a mapping"),
    ('hyperv_guest_vf_drivers: "mce,mlxen"\n',
     "hyperv_guest_vf_drivers: must be a list, not a string"),
    ('hyperv_vss_exclude: "/mnt/x*"\n', "hyperv_vss_exclude: must be a list, not a string"),
    ("hyperv_vss_freeze_timeout: true\n",
     "hyperv_vss_freeze_timeout: must be an integer, not a boolean"),
    ("hyperv_guest_interfaces: [{name: null}]\n", "hyperv_guest_interfaces[0].name: is null"),
    ("""\
     hyperv_guest_interfaces:
       - {name: hn0, ipv4: static, ipv4_address: 10.0.0.4, ipv4_prefix: true}
     """, "hyperv_guest_interfaces[0].ipv4_prefix: must be an integer, not a boolean"),
    ("hyperv_guest_vf_delay: .inf\n", "hyperv_guest_vf_delay: must be an integer, not a float"),
    # hv_snapshot.c fails a request 15 s after it queued it: the budget stays inside.
    ("hyperv_vss_budget: 15\n", "hyperv_vss_budget: 15 is not between 1 and 14"),
    ("hyperv_vss_hooks_dir: /tmp\n", "hyperv_vss_hooks_dir: '/tmp' is a system directory"),
    ("hyperv_vss_hooks_dir: /usr/local/etc/../../tmp\n", "is not normalised"),
    ("hyperv_guest_interfaces: [{name: lagg0}]\n", "'lagg0' is a lagg's name, not an hn's"),
    ("hyperv_guest_interfaces: [{name: hn0, lagg: lagg1}, {name: hn1}]\n",
     "hyperv_guest_interfaces[1].name (default lagg lagg1): lagg 'lagg1' is already used"),
    ("hyperv_guest_interfaces: [{name: mce0}]\n", "'mce0' is a VF's name"),
])
def test_values_of_the_wrong_type_or_shape_are_refused(hvbsd_render, tmp_path, text, expected):
    _refused(hvbsd_render, tmp_path, text, expected)


BINARY_FIELDS = [
    ("hyperv_guest_interfaces: [{name: %s}]",
     lambda v: {"hyperv_guest_interfaces": [{"name": v}]}),
    ("hyperv_guest_interfaces: [{name: hn0, lagg: %s}]",
     lambda v: {"hyperv_guest_interfaces": [{"name": "hn0", "lagg": v}]}),
    ("hyperv_vss_state_file: %s", lambda v: {"hyperv_vss_state_file": v}),
    ("hyperv_vss_device: %s", lambda v: {"hyperv_vss_device": v}),
    ("hyperv_vss_hooks_dir: %s", lambda v: {"hyperv_vss_hooks_dir": v}),
    ("hyperv_vss_exclude: [%s]", lambda v: {"hyperv_vss_exclude": [v]}),
]


@pytest.mark.parametrize(("field", "variables"), BINARY_FIELDS)
def test_binary_values_are_refused_by_the_loader_and_by_the_check(hvbsd_render, tmp_path,
                                                                  field, variables):
    _refused(hvbsd_render, tmp_path, field % BINARY + "\n", "tag !!binary is not allowed")
    # The same bytes arriving from Ansible's inventory, past no loader of ours.
    problems = validate(variables(PAYLOAD.encode()))
    assert any("must be a string, not bytes (!!binary)" in p for p in problems), problems


def test_an_alias_bomb_is_refused_before_it_expands(hvbsd_render, tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level, name in enumerate("bcdefgh"):
        previous = "abcdefgh"[level]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    lines.append("hyperv_guest_vf_drivers: [" + ",".join(["*h"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 600
    _refused(hvbsd_render, tmp_path, text, "aliases repeated too often")


def test_duplicate_keys_name_both_lines(hvbsd_render, tmp_path):
    _refused(hvbsd_render, tmp_path, "hyperv_guest_mode: lagg\nx: 1\nhyperv_guest_mode: lagg\n",
             "host.yml:3: duplicate key 'hyperv_guest_mode' (first at line 1)")


def test_a_huge_bad_value_is_quoted_only_in_part(hvbsd_render, tmp_path):
    stderr = _refused(hvbsd_render, tmp_path,
                      "hyperv_guest_interfaces: [{name: hn0, options: '" + "x;" * 200_000 + "'}]\n",
                      "hyperv_guest_interfaces[0].options")
    assert len(stderr) < 2000


def test_a_vars_file_over_the_size_cap_is_not_read(hvbsd_render, tmp_path):
    _refused(hvbsd_render, tmp_path, "# " + "x" * (2 << 20) + "\n", "at most 1048576 are read")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_vars_file_that_is_not_a_regular_file_is_refused(hvbsd_render, tmp_path, special):
    import os

    path = special
    if special == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    out = tmp_path / "out"
    result = hvbsd_render("--vars", path, "--out", str(out))
    assert result.returncode == 2
    assert "not a regular file" in result.stderr
    assert not out.exists()
