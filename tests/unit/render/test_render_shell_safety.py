"""Property: whatever hvbsd accepts, sourcing its rc.conf lines sets exactly the
intended variables and runs nothing; whatever could run something is refused."""

from __future__ import annotations

import re
import shlex
import subprocess

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hvbsd.render import InvalidVariables, render_host, validate

CANARY = "canary"
HOSTILE = [f";{CANARY}", f"$({CANARY})", f"`{CANARY}`", f"\n{CANARY}", f"' ; {CANARY} '",
           f'" ; {CANARY} "', f"| {CANARY}", f"& {CANARY}", f"\\\n{CANARY}", "${HOME}"]

plain_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:/=", min_size=1,
                     max_size=8)


def maybe_hostile(safe: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    hostile = st.builds(lambda text, suffix: text + suffix, safe, st.sampled_from(HOSTILE))
    return st.one_of(safe, safe, safe, hostile)


interface_name = maybe_hostile(st.builds(lambda u: f"hn{u}", st.integers(0, 12)))
options = maybe_hostile(st.lists(plain_word, max_size=3).map(" ".join))
ipv4 = st.builds(lambda a, b: f"10.{a}.{b}.4", st.integers(0, 300), st.integers(0, 255))
ipv6 = st.builds(lambda a: f"2001:db8::{a:x}", st.integers(1, 0xFFFF))

interface = st.fixed_dictionaries(
    {"name": interface_name},
    optional={
        "ipv4": st.sampled_from(["dhcp", "syncdhcp", "static"]),
        "ipv4_address": maybe_hostile(ipv4),
        "ipv4_prefix": st.integers(0, 40),
        "ipv6": st.sampled_from(["none", "slaac", "static"]),
        "ipv6_address": maybe_hostile(ipv6),
        "options": options,
        "lagg": maybe_hostile(st.builds(lambda u: f"lagg{u}", st.integers(0, 20))),
    },
)
host = st.fixed_dictionaries(
    {"hyperv_guest_mode": st.sampled_from(["lagg", "transparent"]),
     "hyperv_guest_interfaces": st.lists(interface, max_size=3)},
    optional={
        "hyperv_guest_static_lagg": st.booleans(),
        "hyperv_guest_vf_delay": st.integers(0, 200),
        "hyperv_vss_exclude": st.lists(maybe_hostile(plain_word.map(lambda w: f"/{w}*")),
                                       max_size=2),
        "hyperv_vss_hooks_dir": maybe_hostile(plain_word.map(lambda w: f"/usr/local/{w}")),
        "hyperv_vss_debug": st.booleans(),
    },
)

SOURCE = r"""
set > "$OUT/before"
. "$RENDERED"
set > "$OUT/after"
"""


def _source_in_clean_sh(tmp_path, text: str) -> tuple[dict[str, str], str]:
    """Variables that sourcing text changed (name -> value) and what sh wrote to stderr."""
    canary_dir = tmp_path / "bin"
    canary_dir.mkdir(exist_ok=True)
    canary = canary_dir / CANARY
    canary.write_text(f"#!/bin/sh\necho called >> {tmp_path}/canary.log\n")
    canary.chmod(0o755)
    rendered = tmp_path / "rendered.sh"
    rendered.write_text(text)
    result = subprocess.run(
        ["env", "-i", f"PATH={canary_dir}", f"OUT={tmp_path}", f"RENDERED={rendered}",
         "/bin/sh", "-c", SOURCE], capture_output=True, text=True, check=False)
    before = _parse_set((tmp_path / "before").read_text())
    after = _parse_set((tmp_path / "after").read_text())
    changed = {name: value for name, value in after.items() if before.get(name) != value}
    return changed, result.stderr


def _parse_set(text: str) -> dict[str, str]:
    """`set` output (one NAME=shell-quoted-value per line; values here hold no newline)."""
    values = {}
    for line in text.splitlines():
        name, _, raw = line.partition("=")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            try:
                words = shlex.split(raw) if raw else [""]
            except ValueError:  # a multi-line value (IFS); the same before and after
                continue
            values[name] = words[0] if words else ""
    return values


def _expected_names(variables: dict) -> set[str]:
    lagg_mode = variables["hyperv_guest_mode"] == "lagg"
    static = lagg_mode and variables.get("hyperv_guest_static_lagg", False)
    names = {"hyperv_vf_delay"} if lagg_mode else set()
    for interface in variables["hyperv_guest_interfaces"]:
        hn = interface["name"]
        lagg = interface.get("lagg", "lagg" + re.sub(r"^.*[^0-9]", "", hn))
        names.add(f"ifconfig_{hn}")
        carrier = lagg if static else hn
        if static:
            names |= {"cloned_interfaces", f"ifconfig_{lagg}"}
        if interface.get("ipv6", "none") != "none":
            names.add(f"ifconfig_{carrier}_ipv6")
        if lagg_mode:
            names.add(f"hvbsd_lagg_{hn}")
    return names


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(variables=host)
def test_sourcing_accepted_output_sets_only_intended_variables(tmp_path, variables):
    problems = validate(variables)
    event("refused" if problems else "accepted")
    if problems:
        assert all(re.match(r"hyperv_(guest|vss)_\w+", problem) for problem in problems)
        try:
            render_host(variables)
        except InvalidVariables as refused:
            assert refused.problems == problems
        else:
            raise AssertionError("render_host rendered variables that validate refused")
        return
    files = render_host(variables)
    rc_block = files["/etc/rc.conf"].content.decode()
    changed, stderr = _source_in_clean_sh(tmp_path, rc_block)
    assert stderr == ""
    assert not (tmp_path / "canary.log").exists(), "sourcing rc.conf lines ran a command"
    assert set(changed) == _expected_names(variables)
    for interface in variables["hyperv_guest_interfaces"]:
        if variables["hyperv_guest_mode"] == "lagg":
            assert changed[f"hvbsd_lagg_{interface['name']}"] == interface.get(
                "lagg", "lagg" + re.sub(r"^.*[^0-9]", "", interface["name"]))
        words = interface.get("options", "").split()
        assert " ".join(words) in changed[f"ifconfig_{interface['name']}"]

    if "/etc/rc.conf.d/hvbsd_vssd" in files:
        daemon, stderr = _source_in_clean_sh(tmp_path, files["/etc/rc.conf.d/hvbsd_vssd"]
                                             .content.decode())
        assert stderr == "" and not (tmp_path / "canary.log").exists()
        assert set(daemon) == {"hvbsd_vssd_enable", "hvbsd_vssd_flags"}
        for glob in variables.get("hyperv_vss_exclude", []):
            assert f"--exclude '{glob}'" in daemon["hvbsd_vssd_flags"]

    if "/etc/rc.conf.d/hvbsd_kvpd" in files:
        daemon, stderr = _source_in_clean_sh(tmp_path, files["/etc/rc.conf.d/hvbsd_kvpd"]
                                             .content.decode())
        assert stderr == "" and not (tmp_path / "canary.log").exists()
        assert set(daemon) == {"hvbsd_kvpd_enable", "hvbsd_kvpd_flags"}
        assert daemon["hvbsd_kvpd_flags"].split()[:2] == ["--lookup", "hvbsd"]

    loader = files["/boot/loader.conf.d/hvbsd.conf"].content.decode().splitlines()
    settings_lines = [line for line in loader if not line.startswith("#")]
    assert all(re.fullmatch(r'[a-z_][a-z0-9_.]*="[A-Z0-9a-z]*"', line) for line in settings_lines)
    shell_names = "\n".join(line for line in settings_lines if "." not in line.split("=")[0])
    loader_vars, stderr = _source_in_clean_sh(tmp_path, shell_names + "\n")
    assert stderr == "" and set(loader_vars) <= {"if_lagg_load"}
