"""The one check of hvbsd's variables: exact types, bounds and grammars.

One copy, shared: the roles call it as the ``hvbsd_problems`` filter before
any task that changes a guest (it is the collection's filter plugin), and
``hvbsd render`` (and the lab, through it) loads this file by path. It needs
only the standard library and PyYAML, which Ansible itself requires.

The schema is the roles' argument specs (``meta/argument_specs.yml``); this
file adds what a spec cannot say (bounds, grammars, relations between values)
in the tables below, one entry per option. Types are exact: a value passes
only if it already has the spec's type. ansible-core's validator would coerce
a mapping or bytes to a string, a string to a list of its characters and a
bool to an int, and the templates would render the coerced text; nothing
here converts. Every walk is bounded (list lengths and string sizes are
checked before anything is iterated), so an alias bomb or a huge value costs
one comparison, and messages quote at most a short prefix of a value.

``problems(variables)`` returns every problem as ``"<variable path>: <what is
wrong>"``; an empty list means the values are safe to render.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

ROLE_PREFIXES = {"hyperv_guest": "hyperv_guest_", "hyperv_vss": "hyperv_vss_"}
# This file is plugins/filter/ of the collection (or checkout); the roles are beside.
ROLES_DIR = Path(__file__).resolve().parent.parent.parent / "roles"

# Names (IFNAMSIZ is 16 in net/if.h: 15 characters and the NUL).
MAX_IFNAME = 15
INTERFACE_NAME = re.compile(r"[a-z][a-z0-9]*[0-9]")
LAGG_NAME = re.compile(r"lagg[0-9]+")
DRIVER_NAME = re.compile(r"[a-z]+")
# A file in the hook directory, as hvbsd_vssd runs them (no leading dot or
# dash, no trailing ~).
HOOK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,+@%=-]*(?<!~)")
# An inventory host name, used as a directory name by `hvbsd render -i`.
HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@%+=-]*")
MAX_HOST_NAME = 253
# Characters any value may have that hvbsd writes into a sourced shell file:
# no quotes, $, backticks, backslashes, ;, &, |, <, >, (, ), ~, !, #, or
# white space other than a plain space.
SHELL_SAFE = re.compile(r"[A-Za-z0-9 _.,:/=+@%*?\[\]-]*")
WORDS = re.compile(r"[A-Za-z0-9 _.,:/=+@%-]*")
GLOB = re.compile(r"/[A-Za-z0-9_.,:/=+@%*?\[\]-]*")
PATH_CHARS = re.compile(r"/[A-Za-z0-9_.,:/=+@%-]*")
MAX_PATH = 1023  # PATH_MAX (1024, sys/syslimits.h) less the NUL
MAX_NAME = 255  # NAME_MAX
MAX_STRING = 1024  # any other string
MAX_PROBLEMS = 50
SHOWN = 40  # characters of a bad value quoted in a message

# Directories of hier(7) that must never be the hook directory: hvbsd_vssd
# runs every executable in it as root, and the role owns its mode.
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/compat", "/dev", "/etc", "/etc/rc.d", "/etc/rc.conf.d",
    "/etc/devd", "/home", "/lib", "/libexec", "/media", "/mnt", "/net", "/proc",
    "/rescue", "/root", "/sbin", "/tmp", "/usr", "/usr/bin", "/usr/home", "/usr/include",
    "/usr/lib", "/usr/libexec", "/usr/local", "/usr/local/bin", "/usr/local/etc",
    "/usr/local/etc/rc.d", "/usr/local/etc/devd", "/usr/local/lib", "/usr/local/libexec",
    "/usr/local/sbin", "/usr/local/share", "/usr/obj", "/usr/ports", "/usr/sbin",
    "/usr/share", "/usr/src", "/usr/tests", "/var", "/var/db", "/var/empty", "/var/log",
    "/var/mail", "/var/run", "/var/spool", "/var/tmp",
})
# Trees whose directories are shared with other users or are not directories
# on disk at all.
SHARED_TREES = ("/tmp/", "/var/tmp/", "/dev/", "/proc/", "/home/", "/usr/home/")

# Bounds of every int option, by path ("[]" stands for any list index).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "hyperv_guest_vf_delay": (2, 3600),
    "hyperv_guest_interfaces[].ipv4_prefix": (0, 32),
    "hyperv_guest_interfaces[].ipv6_prefix": (0, 128),
    "hyperv_vss_freeze_timeout": (1, 3600),
    # A hook must finish inside the kernel's 15 s budget for the whole request.
    "hyperv_vss_hook_timeout": (1, 14),
    # The daemon's whole FREEZE, likewise (hvbsd_vssd refuses 15 and more).
    "hyperv_vss_budget": (1, 14),
}
# Most items of every list option.
MAX_ITEMS: dict[str, int] = {
    "hyperv_guest_vf_drivers": 16,
    "hyperv_guest_interfaces": 64,
    "hyperv_vss_exclude": 64,
    "hyperv_vss_hooks": 128,
}


def _shown(value: Any) -> str:
    """A short, printable image of a value for a message."""
    if isinstance(value, str):
        if len(value) <= SHOWN:
            return repr(value)
        return f"{value[:SHOWN]!r}... ({len(value)} characters)"
    return _kind(value)


def _kind(value: Any) -> str:
    """What a YAML value is, in the words of YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (bytes, bytearray)):
        return "bytes (!!binary)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _unsafe(text: str) -> Optional[str]:
    if SHELL_SAFE.fullmatch(text):
        return None
    bad = sorted({char for char in text[:MAX_STRING] if not SHELL_SAFE.fullmatch(char)})
    shown = ", ".join(repr(char) for char in bad[:8])
    return f"contains {shown}, which could break out of a sourced shell line"


def _grammar(pattern: re.Pattern[str], what: str, most: int) -> Callable[[str], Optional[str]]:
    def check(text: str) -> Optional[str]:
        if len(text) > most:
            return f"{_shown(text)} is longer than {most} characters"
        if not pattern.fullmatch(text):
            return f"{_shown(text)} is not {what}"
        return None

    return check


def _address(version: int) -> Callable[[str], Optional[str]]:
    parse = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address

    def check(text: str) -> Optional[str]:
        try:
            parse(text)
        except ValueError:
            return f"{_shown(text)} is not an IPv{version} address"
        return None

    return check


def path_problem(text: str) -> Optional[str]:
    """Why text is not an absolute, normalised path of safe characters, or None."""
    if len(text) > MAX_PATH:
        return f"{_shown(text)} is longer than {MAX_PATH} characters"
    if not PATH_CHARS.fullmatch(text):
        return f"{_shown(text)} is not an absolute path"
    if text.startswith("//") or posixpath.normpath(text) != text:
        return f"{_shown(text)} is not normalised (write {posixpath.normpath(text)!r})"
    if any(len(part) > MAX_NAME for part in text.split("/")):
        return f"{_shown(text)} has a component longer than {MAX_NAME} characters"
    return None


def _hooks_dir(text: str) -> Optional[str]:
    problem = path_problem(text)
    if problem:
        return problem
    if text in SYSTEM_DIRS:
        return f"{text!r} is a system directory; use a directory of its own"
    if (text + "/").startswith(SHARED_TREES):
        return f"{text!r} is in a shared or virtual tree; use a directory of its own"
    return None


def _optional_path(text: str) -> Optional[str]:
    return None if text == "" else path_problem(text)


def _controller_file(text: str) -> Optional[str]:
    if text == "" or len(text) > MAX_PATH:
        return f"needs a file name of 1 to {MAX_PATH} characters"
    return None


def host_name_problem(name: Any) -> Optional[str]:
    """Why an inventory host name cannot name a directory of its own, or None."""
    if not isinstance(name, str):
        return f"host name must be a string, not {_kind(name)}"
    if len(name) > MAX_HOST_NAME:
        return f"host name {_shown(name)} is longer than {MAX_HOST_NAME} characters"
    if not HOST_NAME.fullmatch(name):
        return (f"host name {_shown(name)} is not a plain name (letters, digits and "
                "_ . : @ % + = -, not starting with . or -)")
    return None


_INTERFACE = _grammar(INTERFACE_NAME, "an interface name ([a-z][a-z0-9]*[0-9])", MAX_IFNAME)
# The grammar of every str option that has no choices, by path.
STRING_CHECKS: dict[str, Callable[[str], Optional[str]]] = {
    "hyperv_guest_vf_drivers[]": _grammar(DRIVER_NAME, "a driver name (lower-case letters)",
                                          MAX_IFNAME - 1),
    "hyperv_guest_interfaces[].name": _INTERFACE,
    "hyperv_guest_interfaces[].lagg": _grammar(
        LAGG_NAME, "a lagg name (lagg followed by a unit number)", MAX_IFNAME),
    "hyperv_guest_interfaces[].ipv4_address": _address(4),
    "hyperv_guest_interfaces[].ipv6_address": _address(6),
    "hyperv_guest_interfaces[].options": _grammar(WORDS, "a list of ifconfig words", 256),
    "hyperv_guest_interfaces[].vfup.lagg_options": _grammar(WORDS, "a list of words", 256),
    "hyperv_guest_interfaces[].vfup.dhclient_flags": _grammar(WORDS, "a list of words", 256),
    "hyperv_vss_device": path_problem,
    "hyperv_vss_app_device": _optional_path,
    "hyperv_vss_hooks_dir": _hooks_dir,
    "hyperv_vss_state_file": path_problem,
    "hyperv_vss_pidfile": path_problem,
    "hyperv_vss_exclude[]": _grammar(GLOB, "a mount point glob (starting with /)", MAX_PATH),
    "hyperv_vss_hooks[].name": _grammar(
        HOOK_NAME, "a plain file name (letters, digits, _ . , + @ % = -; not starting with . "
        "or -, not ending with ~)", MAX_NAME),
    "hyperv_vss_hooks[].src": _controller_file,
}


def known_variables() -> dict[str, dict[str, Any]]:
    """Role -> the options of its argument spec (entry point main)."""
    known = {}
    for role in ROLE_PREFIXES:
        spec_file = ROLES_DIR / role / "meta" / "argument_specs.yml"
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        known[role] = spec["argument_specs"]["main"]["options"]
    return known


def schema_gaps(specs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Options the tables above do not cover: each int needs bounds, each list a
    length, each free-form str a grammar. Empty when the schema is complete."""
    gaps: list[str] = []

    def walk(path: str, option: Mapping[str, Any]) -> None:
        kind = option.get("type", "str")
        if kind == "int" and path not in INT_BOUNDS:
            gaps.append(f"{path}: int without bounds in INT_BOUNDS")
        if kind == "str" and "choices" not in option and path not in STRING_CHECKS:
            gaps.append(f"{path}: str without a grammar in STRING_CHECKS")
        if kind == "list":
            if path not in MAX_ITEMS:
                gaps.append(f"{path}: list without a length in MAX_ITEMS")
            element = {"type": option.get("elements", "str")}
            if "options" in option:
                element["options"] = option["options"]
            walk(path + "[]", element)
            return
        for name, sub in (option.get("options") or {}).items():
            walk(f"{path}.{name}", sub)

    for options in specs.values():
        for name, option in options.items():
            walk(name, option)
    return gaps


_KNOWN: Optional[dict[str, dict[str, Any]]] = None


def schema() -> dict[str, dict[str, Any]]:
    """Role -> its options, read once and checked complete (see schema_gaps)."""
    global _KNOWN
    if _KNOWN is None:
        known = known_variables()
        gaps = schema_gaps(known)
        if gaps:
            raise RuntimeError("hvbsd_checks: incomplete schema: " + "; ".join(gaps))
        _KNOWN = known
    return _KNOWN


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")


_EXACT: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "list": (list, tuple), "dict": (Mapping,),
}
_NAMES = {"str": "a string", "int": "an integer", "bool": "a boolean (true or false)",
          "list": "a list", "dict": "a mapping"}


def _check(report: _Report, path: str, shape: str, option: Mapping[str, Any], value: Any
           ) -> bool:
    """Check one value against its option; True when it is of the right type
    throughout (so the relations between values can be checked)."""
    kind = option.get("type", "str")
    if value is None:
        report.add(path, "is null; give a value or leave the key out")
        return False
    if not isinstance(value, _EXACT[kind]) or (kind == "int" and isinstance(value, bool)):
        report.add(path, f"must be {_NAMES[kind]}, not {_kind(value)}")
        return False
    if kind == "str":
        return _check_string(report, path, shape, option, value)
    if kind == "int":
        low, high = INT_BOUNDS[shape]
        if not low <= value <= high:
            report.add(path, f"{value} is not between {low} and {high}")
        return True
    if kind == "list":
        most = MAX_ITEMS[shape]
        if len(value) > most:
            report.add(path, f"has {len(value)} items; at most {most}")
            return False
        element = {"type": option.get("elements", "str")}
        if "options" in option:
            element["options"] = option["options"]
        results = [_check(report, f"{path}[{index}]", shape + "[]", element, item)
                   for index, item in enumerate(value)]
        return all(results)
    if kind == "dict":
        return _check_mapping(report, path, shape, option.get("options") or {}, value)
    return True


def _check_string(report: _Report, path: str, shape: str, option: Mapping[str, Any],
                  text: str) -> bool:
    if len(text) > MAX_STRING:
        report.add(path, f"{_shown(text)} is longer than {MAX_STRING} characters")
        return False
    if "choices" in option:
        if text not in option["choices"]:
            report.add(path, f"{_shown(text)} is not one of "
                       + ", ".join(str(choice) for choice in option["choices"]))
            return False
        return True
    unsafe = _unsafe(text)
    if unsafe:
        report.add(path, unsafe)
        return False
    problem = STRING_CHECKS[shape](text)
    if problem:
        report.add(path, problem)
        return False
    return True


def _check_mapping(report: _Report, path: str, shape: str, options: Mapping[str, Any],
                   value: Mapping[Any, Any]) -> bool:
    unknown = [key for key in value if not (isinstance(key, str) and key in options)]
    for key in unknown[:5]:
        report.add(path, f"unknown key {_shown(key)}; expected one of " + ", ".join(options))
    if len(unknown) > 5:
        report.add(path, f"{len(unknown) - 5} more unknown keys")
    good = not unknown
    for name, option in options.items():
        if name not in value:
            if option.get("required"):
                report.add(f"{path}.{name}", "is required")
                good = False
            continue
        good = _check(report, f"{path}.{name}", f"{shape}.{name}", option, value[name]) and good
    return good


def _default_lagg(name: str) -> str:
    return "lagg" + re.sub(r"^.*[^0-9]", "", name)


def _items(value: Any, most: int) -> list[Mapping[str, Any]]:
    """The mappings of a list already checked for its length, others left out: the
    relations between values are checked on whatever parts have the right type."""
    if not isinstance(value, (list, tuple)) or len(value) > most:
        return []
    return [item if isinstance(item, Mapping) else {} for item in value]


def _text(mapping: Mapping[str, Any], key: str,
          check: Optional[Callable[[str], Optional[str]]] = None) -> Optional[str]:
    value = mapping.get(key)
    if not isinstance(value, str) or _unsafe(value) or (check is not None and check(value)):
        return None
    return value


def _check_interfaces(report: _Report, interfaces: list[Mapping[str, Any]],
                      drivers: list[str]) -> None:
    names: dict[str, str] = {}
    laggs: dict[str, str] = {}
    vf = re.compile("(" + "|".join(drivers) + ")[0-9]+") if drivers else None
    lagg_check = STRING_CHECKS["hyperv_guest_interfaces[].lagg"]
    for index, interface in enumerate(interfaces):
        base = f"hyperv_guest_interfaces[{index}]"
        _check_addresses(report, base, interface)
        name = _text(interface, "name", _INTERFACE)
        if name is None:
            continue
        if LAGG_NAME.fullmatch(name):
            report.add(f"{base}.name", f"{name!r} is a lagg's name, not an hn's")
        if vf is not None and vf.fullmatch(name):
            report.add(f"{base}.name", f"{name!r} is a VF's name (hyperv_guest_vf_drivers)")
        if name in names:
            report.add(f"{base}.name", f"{name!r} is already used by {names[name]}")
        names.setdefault(name, f"{base}.name")
        if "lagg" in interface:
            lagg, where = _text(interface, "lagg", lagg_check), f"{base}.lagg"
        else:
            lagg = _default_lagg(name)
            where = f"{base}.name (default lagg {lagg})"
        if lagg is None:
            continue
        if lagg in laggs:
            report.add(where, f"lagg {lagg!r} is already used by {laggs[lagg]}")
        laggs.setdefault(lagg, where)
    for lagg, where in laggs.items():
        if lagg in names:
            report.add(where, f"lagg {lagg!r} is the name of {names[lagg]}")


def _check_addresses(report: _Report, base: str, interface: Mapping[str, Any]) -> None:
    for version, default_method in ((4, "dhcp"), (6, "none")):
        method = interface.get(f"ipv{version}", default_method)
        address_key, prefix_key = f"ipv{version}_address", f"ipv{version}_prefix"
        if method == "static":
            if address_key not in interface:
                report.add(f"{base}.{address_key}", f"required when ipv{version} is static")
            if version == 4 and prefix_key not in interface:
                report.add(f"{base}.{prefix_key}", "required when ipv4 is static")
            continue
        # The IPv6 prefix has a default, so it may be present either way.
        for key in (address_key,) if version == 6 else (address_key, prefix_key):
            if key in interface:
                report.add(f"{base}.{key}", f"only used when ipv{version} is static")


def _check_hooks(report: _Report, hooks: list[Mapping[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for index, hook in enumerate(hooks):
        base = f"hyperv_vss_hooks[{index}]"
        if hook and hook.get("state", "present") == "present" and "src" not in hook:
            report.add(f"{base}.src", "required unless state is absent")
        name = _text(hook, "name")
        if name is None:
            continue
        if name in seen:
            report.add(f"{base}.name",
                       f"{name!r} is already used by hyperv_vss_hooks[{seen[name]}]")
        seen.setdefault(name, index)


def _check_vss_paths(report: _Report, variables: Mapping[str, Any]) -> None:
    files = {name: variables.get(name) for name in ("hyperv_vss_state_file", "hyperv_vss_pidfile")}
    if files["hyperv_vss_state_file"] == files["hyperv_vss_pidfile"] is not None:
        report.add("hyperv_vss_pidfile", "must differ from hyperv_vss_state_file")
    hooks_dir = variables.get("hyperv_vss_hooks_dir")
    for name, path in files.items():
        if isinstance(hooks_dir, str) and isinstance(path, str) and path.startswith(
                hooks_dir + "/"):
            report.add(name, "must not be inside hyperv_vss_hooks_dir (it would run as a hook)")


def problems(variables: Mapping[str, Any]) -> list[str]:
    """Every problem in variables (all of a host's variables, or just hvbsd's)."""
    report = _Report()
    options: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for role, role_options in schema().items():
        for name, option in role_options.items():
            options[name] = (role, option)
    prefixes = tuple(ROLE_PREFIXES.values())
    typed: dict[str, bool] = {}
    for name in sorted(key for key in variables if isinstance(key, str) and key.startswith(
            prefixes)):
        if name not in options:
            role = next(r for r, p in ROLE_PREFIXES.items() if name.startswith(p))
            report.add(_shown(name)[1:-1] if len(name) <= SHOWN else _shown(name),
                       f"unknown variable for role {role}")
            continue
        typed[name] = _check(report, name, name, options[name][1], variables[name])
    drivers = variables.get("hyperv_guest_vf_drivers") if typed.get(
        "hyperv_guest_vf_drivers") else []
    _check_interfaces(report, _items(variables.get("hyperv_guest_interfaces"),
                                     MAX_ITEMS["hyperv_guest_interfaces"]), drivers)
    _check_hooks(report, _items(variables.get("hyperv_vss_hooks"), MAX_ITEMS["hyperv_vss_hooks"]))
    _check_vss_paths(report, variables)
    found = report.problems
    if len(found) > MAX_PROBLEMS:
        found = [*found[:MAX_PROBLEMS], f"... and {len(found) - MAX_PROBLEMS} more problems"]
    return found


class FilterModule:
    """``hvbsd_problems``: ``{{ vars_to_check | hvbsd_problems }}`` -> list of problems."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"hvbsd_problems": problems}
