"""Property: values of every YAML type, in every variable of both roles, never run code.

Whatever is drawn (strings with shell metacharacters, bytes, mappings with
hostile keys, lists, ints, floats, bools, null), `hvbsd render` either refuses
it with exit 2 and writes nothing, or renders files that, sourced or run by a
real /bin/sh with a canary command first on PATH, never call the canary. No
draw ends in a traceback.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvbsd.cli import main as hvbsd_main
from hvbsd.devd import parse_text
from hvbsd.render import InvalidVariables, render_host
from hvbsd.render.engine import argument_specs

CANARY = "canary"
PAYLOADS = [f"$({CANARY})", f"`{CANARY}`", f";{CANARY}", f"\n{CANARY}\n", f"'$({CANARY})'",
            f'"$({CANARY})"', f"|{CANARY}", f"&{CANARY}", f"\\\n{CANARY}", f"${{x:-$({CANARY})}}",
            f"$'\\n{CANARY}'", f"\t{CANARY}", f"\u00a0{CANARY}", f"\x00{CANARY}"]

hostile_text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.builds(lambda head, payload: head + payload,
              st.sampled_from(["hn0", "lagg0", "/usr/local/x", "mce", "dhcp", ""]),
              st.sampled_from(PAYLOADS)),
    st.text(max_size=12),
)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-3, 200),
    st.floats(allow_nan=True, allow_infinity=True), hostile_text,
    st.binary(max_size=12), st.sampled_from(PAYLOADS).map(str.encode),
)
hostile_key = st.one_of(hostile_text, st.integers(), st.none(), st.booleans())
any_value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(hostile_key, inner, max_size=3)),
    max_leaves=8,
)

SPECS = {name: option for options in argument_specs().values()
         for name, option in options.items()}
# Every character the checks let into a sourced shell file, so that accepted
# draws try all of them.
ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:/=+@%*?[]-"
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "str": st.one_of(
        st.sampled_from(["hn0", "hn1", "lagg1", "/usr/local/etc/x", "mtu 1500", "10.0.0.4",
                         "2001:db8::1", "mce", "/mnt/*", "10-app"]),
        st.text(alphabet=ALLOWED, max_size=10),
        st.text(alphabet=ALLOWED, max_size=10).map(lambda text: "/" + text)),
    "int": st.integers(0, 4000),
    "bool": st.booleans(),
}


def plausible(option: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the option's own type (often valid), or anything at all."""
    kind = option.get("type", "str")
    if "choices" in option:
        good: st.SearchStrategy[Any] = st.sampled_from(option["choices"])
    elif kind == "list":
        element = {"type": option.get("elements", "str"), **(
            {"options": option["options"]} if "options" in option else {})}
        good = st.lists(plausible(element), max_size=3)
    elif kind == "dict":
        options = option.get("options") or {}
        good = st.fixed_dictionaries(
            {name: plausible(sub) for name, sub in options.items() if sub.get("required")},
            optional={name: plausible(sub) for name, sub in options.items()
                      if not sub.get("required")})
    else:
        good = GOOD[kind]
    return st.one_of(good, good, any_value)


def of_its_type(option: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the option's own type only: many of them are accepted."""
    kind = option.get("type", "str")
    if "choices" in option:
        return st.sampled_from(option["choices"])
    if kind == "list":
        element = {"type": option.get("elements", "str"), **(
            {"options": option["options"]} if "options" in option else {})}
        return st.lists(of_its_type(element), max_size=2)
    if kind == "dict":
        options = option.get("options") or {}
        return st.fixed_dictionaries(
            {name: of_its_type(sub) for name, sub in options.items() if sub.get("required")},
            optional={name: of_its_type(sub) for name, sub in options.items()
                      if not sub.get("required") and not name.startswith("ipv")})
    return GOOD[kind]


# A host that renders every output, and one string of it made hostile: the
# draws most likely to slip through one check while all the others pass.
BASE: dict[str, Any] = {
    "hyperv_guest_mode": "lagg",
    "hyperv_guest_static_lagg": False,
    "hyperv_guest_vf_drivers": ["mce", "mlxen"],
    "hyperv_guest_interfaces": [
        {"name": "hn0", "lagg": "lagg0", "ipv4": "static", "ipv4_address": "10.0.0.4",
         "ipv4_prefix": 24, "ipv6": "static", "ipv6_address": "2001:db8::4", "options": "mtu 1500",
         "vfup": {"lagg_options": "mtu 1500", "dhclient_flags": "-q"}},
        {"name": "hn1", "ipv4": "syncdhcp", "ipv6": "slaac"}],
    "hyperv_vss_device": "/dev/hv_fsvss_dev",
    "hyperv_vss_app_device": "/dev/hv_appvss_dev",
    "hyperv_vss_exclude": ["/mnt/*"],
    "hyperv_vss_hooks_dir": "/usr/local/etc/hvbsd/vss.d",
    "hyperv_vss_state_file": "/var/run/hvbsd_vssd.state",
    "hyperv_vss_pidfile": "/var/run/hvbsd_vssd.pid",
}


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _string_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _string_paths(item, (*path, index))]
    return []


def _with(path: tuple[Any, ...], text: str, append: bool) -> dict[str, Any]:
    host = copy.deepcopy(BASE)
    target: Any = host
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = target[path[-1]] + text if append else text
    return host


# A payload after a valid value: it passes any check that looks only at the
# start of a value.
one_hostile_string = st.builds(_with, st.sampled_from(_string_paths(BASE)),
                               st.one_of(st.sampled_from(PAYLOADS), hostile_text,
                                         st.text(alphabet=ALLOWED, max_size=6)),
                               st.sampled_from([True, True, True, False]))

MODE = {"hyperv_guest_mode": st.sampled_from(["lagg", "lagg", "transparent"])}
host_variables = st.one_of(
    st.fixed_dictionaries(MODE, optional={name: plausible(option)
                                          for name, option in SPECS.items()
                                          if name != "hyperv_guest_mode"}),
    st.fixed_dictionaries(MODE, optional={name: of_its_type(option)
                                          for name, option in SPECS.items()
                                          if name != "hyperv_guest_mode"}),
)

# rc.subr's run_rc_command builds "$command $rc_flags" and evals it, so the
# daemon's flags are parsed by the shell a second time. Scripts are not run
# (they would act on the machine running the tests): they are parsed, and
# their variable assignments, where rendered values land, are sourced.
RUN = r"""
cd "$WORK" || exit 97
for file in "$@"; do
    case "$file" in
    */rc.conf.d/hvbsd_vssd) (. "$file"; eval ": $hvbsd_vssd_flags") ;;
    *.conf|*/rc.conf) (. "$file") ;;
    *)
        /bin/sh -n "$file" || echo "does not parse: $file" >> "$WORK/canary.log"
        grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$file" > "$WORK/assignments"
        (. "$WORK/assignments")
        ;;
    esac
done
exit 0
"""


def _run_with_canary(tmp: Path, files: list[Path], actions: list[str]) -> str:
    """Source each file, and each devd action, in /bin/sh; the canary's log.

    An action runs as the arguments of ``:``, so its programs never run but
    anything that would escape its words (``;``, ``$(...)``, a newline) does.
    """
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp / "canary.log"
    canary = bin_dir / CANARY
    canary.write_text(f"#!/bin/sh\necho called >> '{log}'\n")
    canary.chmod(0o755)
    env = {"PATH": str(bin_dir), "WORK": str(tmp), "HOME": str(tmp)}
    subprocess.run(["/bin/sh", "-c", RUN, "sh", *map(str, files)], env=env, cwd=tmp,
                   capture_output=True, timeout=60, check=False)
    for action in actions:
        subprocess.run(["/bin/sh", "-c", ": " + action], env=env, cwd=tmp,
                       capture_output=True, timeout=20, check=False)
    return log.read_text() if log.exists() else ""


def _devd_actions(text: str) -> list[str]:
    """Every action of the rendered devd file, with its event variables as a plain name."""
    config = parse_text(text, "hvbsd.conf")
    commands = []
    for rule in config.rules:
        for command in rule.commands:
            commands.append(command.replace("$subsystem", "hn0").replace("$cdev", "hn0")
                            .replace("$type", "ATTACH").replace("$notify", "0x2"))
    return commands


def _render_and_run(tmp_path_factory: Any, variables: dict[str, Any]) -> None:
    try:
        files = render_host(variables)
    except InvalidVariables as refused:
        assert refused.problems
        for problem in refused.problems:
            assert len(problem) < 400, problem  # a short prefix of a value, never all of it
        return
    tmp = tmp_path_factory.mktemp("accepted")
    written = []
    for path, rendered in files.items():
        target = tmp / "root" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rendered.file_bytes())
        written.append(target)
    devd = files["/usr/local/etc/devd/hvbsd.conf"].content.decode()
    assert _run_with_canary(tmp, written, _devd_actions(devd)) == ""


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(variables=host_variables)
def test_values_of_any_yaml_type_never_run_the_canary(tmp_path_factory, variables):
    _render_and_run(tmp_path_factory, variables)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(variables=one_hostile_string)
def test_one_hostile_string_in_a_valid_host_never_runs_the_canary(tmp_path_factory, variables):
    _render_and_run(tmp_path_factory, variables)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(variables=host_variables)
def test_the_cli_exits_0_or_2_and_a_refusal_writes_nothing(tmp_path_factory, variables):
    tmp = tmp_path_factory.mktemp("cli")
    vars_file = tmp / "host.yml"
    vars_file.write_text(yaml.safe_dump(variables, allow_unicode=True))
    out = tmp / "out"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = hvbsd_main(["render", "--vars", str(vars_file), "--out", str(out)])
    assert status in (0, 2), stderr.getvalue()
    assert "Traceback" not in stderr.getvalue()
    if status == 2:
        assert not out.exists(), "a refused render wrote something"
        assert stderr.getvalue().startswith("hvbsd render: ")
    else:
        assert sorted(os.listdir(out))


host_name = st.one_of(
    st.sampled_from(["../escaped", "/tmp/abs", "/", ".", "..", "a/../../b", "-rf", "~root",
                     "web1", "db.example.com", "10.0.0.4", "x" * 300, "", " ", "a b",
                     "$(canary)", "web\n1", "\u00e9t\u00e9", "CON", ".hidden"]),
    st.text(min_size=1, max_size=20),
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=st.lists(host_name, min_size=1, max_size=3, unique=True))
def test_inventory_host_names_never_leave_the_output_directory(tmp_path_factory, names):
    tmp = tmp_path_factory.mktemp("hosts")
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": dict.fromkeys(names)}},
                                        allow_unicode=True))
    out = tmp / "out"
    before = set(tmp.iterdir())
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = hvbsd_main(["render", "-i", str(inventory), "--out", str(out)])
    assert status in (0, 2), stderr.getvalue()
    assert "Traceback" not in stderr.getvalue()
    assert set(tmp.iterdir()) - before <= {out}
    if status == 0:
        for entry in out.iterdir():
            assert entry.is_dir() and not entry.is_symlink()
            assert entry.name not in (".", "..")
    else:
        assert not out.exists()
