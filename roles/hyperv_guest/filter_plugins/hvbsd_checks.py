"""The checks on hvbsd's variables that an argument spec cannot express.

One copy, shared: the roles call it as the ``hvbsd_problems`` filter before
they change anything, and ``hvbsd render`` imports this file by path. It needs
only the standard library and PyYAML (which Ansible itself requires).

``problems(variables)`` returns every problem as ``"<variable path>: <what is
wrong>"``; an empty list means the values are safe to render. Values of the
wrong type are skipped here: the argument spec reports those.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

ROLE_PREFIXES = {"hyperv_guest": "hyperv_guest_", "hyperv_vss": "hyperv_vss_"}
ROLES_DIR = Path(__file__).resolve().parents[2]

INTERFACE_NAME = re.compile(r"[a-z][a-z0-9]*[0-9]")
LAGG_NAME = re.compile(r"lagg[0-9]+")
DRIVER_NAME = re.compile(r"[a-z]+")
MAX_IFNAME = 15  # IFNAMSIZ - 1
# Characters that may appear in any value hvbsd writes into a sourced shell
# file: no quotes, $, backticks, backslashes, ;, &, |, <, >, (, ), newlines.
SHELL_SAFE = re.compile(r"[A-Za-z0-9 _.,:/=+@%*?\[\]-]*")
WORDS = re.compile(r"[A-Za-z0-9 _.,:/=+@%-]*")
GLOB = re.compile(r"[A-Za-z0-9_.,:/=+@%*?\[\]-]+")
ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9_.,:/=+@%-]*")


def known_variables() -> dict[str, frozenset[str]]:
    """Option names of each role's argument spec (entry point main)."""
    known = {}
    for role in ROLE_PREFIXES:
        spec_file = ROLES_DIR / role / "meta" / "argument_specs.yml"
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        known[role] = frozenset(spec["argument_specs"]["main"]["options"])
    return known


_KNOWN: Optional[dict[str, frozenset[str]]] = None


def _known() -> dict[str, frozenset[str]]:
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = known_variables()
    return _KNOWN


def _as_int(value: Any) -> Optional[int]:
    """An int as Ansible's int type accepts it (not bool), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return None


def _unsafe_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) for every string in value with a character outside SHELL_SAFE."""
    if isinstance(value, str):
        if not SHELL_SAFE.fullmatch(value):
            yield path, value
    elif isinstance(value, (int, float)) or value is None:
        return
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _unsafe_strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _unsafe_strings(item, f"{path}[{index}]")


def _describe_unsafe(text: str) -> str:
    bad = sorted({char for char in text if not SHELL_SAFE.fullmatch(char)})
    shown = ", ".join(repr(char) for char in bad)
    return f"contains {shown}, which could break out of a sourced shell line"


class _Collector:
    def __init__(self, unsafe_paths: set[str]) -> None:
        self.problems: list[str] = []
        self.unsafe_paths = unsafe_paths

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def string(self, path: str, value: Any) -> Optional[str]:
        """The value if it is a string not already reported as unsafe."""
        if isinstance(value, str) and path not in self.unsafe_paths:
            return value
        return None

    def matches(self, path: str, value: Any, pattern: re.Pattern[str], what: str) -> None:
        text = self.string(path, value)
        if text is not None and not pattern.fullmatch(text):
            self.add(path, f"{text!r} is not {what}")

    def int_range(self, path: str, value: Any, low: int, high: int) -> None:
        number = _as_int(value)
        if number is not None and not low <= number <= high:
            self.add(path, f"{number} is not between {low} and {high}")


def _interface_name(check: _Collector, path: str, value: Any, pattern: re.Pattern[str],
                    what: str) -> Optional[str]:
    text = check.string(path, value)
    if text is None:
        return None
    if len(text) > MAX_IFNAME:
        check.add(path, f"{text!r} is longer than {MAX_IFNAME} characters")
        return None
    if not pattern.fullmatch(text):
        check.add(path, f"{text!r} is not {what}")
        return None
    return text


def _address(check: _Collector, path: str, value: Any, version: int) -> None:
    text = check.string(path, value)
    if text is None:
        return
    parse: Callable[[str], Any] = (
        ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    )
    try:
        parse(text)
    except ValueError:
        check.add(path, f"{text!r} is not an IPv{version} address")


def _check_interfaces(check: _Collector, interfaces: Any) -> None:
    if not isinstance(interfaces, list):
        return
    names: dict[str, str] = {}
    laggs: dict[str, str] = {}
    for index, interface in enumerate(interfaces):
        base = f"hyperv_guest_interfaces[{index}]"
        if not isinstance(interface, Mapping):
            continue
        name = _interface_name(check, f"{base}.name", interface.get("name"), INTERFACE_NAME,
                               "an interface name ([a-z][a-z0-9]*[0-9])")
        if name is not None:
            if name in names:
                check.add(f"{base}.name", f"{name!r} is already used by {names[name]}")
            else:
                names[name] = f"{base}.name"
        if interface.get("lagg") is not None:
            lagg = _interface_name(check, f"{base}.lagg", interface.get("lagg"), LAGG_NAME,
                                   "a lagg name (lagg followed by a unit number)")
            lagg_path = f"{base}.lagg"
        elif name is not None:
            lagg = "lagg" + re.sub(r"^.*[^0-9]", "", name)
            lagg_path = f"{base}.name (default lagg {lagg})"
        else:
            lagg = None
        if lagg is not None:
            if lagg in laggs:
                check.add(lagg_path, f"lagg {lagg!r} is already used by {laggs[lagg]}")
            else:
                laggs[lagg] = lagg_path
        _check_addresses(check, base, interface)
        for key in ("options",):
            check.matches(f"{base}.{key}", interface.get(key), WORDS, "a list of ifconfig words")
        vfup = interface.get("vfup")
        if isinstance(vfup, Mapping):
            for key in ("lagg_options", "dhclient_flags"):
                check.matches(f"{base}.vfup.{key}", vfup.get(key), WORDS, "a list of words")


def _check_addresses(check: _Collector, base: str, interface: Mapping[str, Any]) -> None:
    for version, default_method, width in ((4, "dhcp", 32), (6, "none", 128)):
        method = interface.get(f"ipv{version}", default_method)
        address_key, prefix_key = f"ipv{version}_address", f"ipv{version}_prefix"
        if method == "static":
            if interface.get(address_key) in (None, ""):
                check.add(f"{base}.{address_key}", f"required when ipv{version} is static")
            else:
                _address(check, f"{base}.{address_key}", interface.get(address_key), version)
            if version == 4 and interface.get(prefix_key) is None:
                check.add(f"{base}.{prefix_key}", "required when ipv4 is static")
            check.int_range(f"{base}.{prefix_key}", interface.get(prefix_key), 0, width)
        else:
            for key in (address_key, prefix_key):
                if interface.get(key) is not None and not (version == 6 and key == prefix_key):
                    check.add(f"{base}.{key}", f"only used when ipv{version} is static")


def problems(variables: Mapping[str, Any]) -> list[str]:
    """Every problem in variables (all of a host's variables, or just hvbsd's)."""
    found: list[str] = []
    known = _known()
    prefixes = tuple(ROLE_PREFIXES.values())
    ours = sorted(name for name in variables if name.startswith(prefixes))
    unsafe: dict[str, str] = {}
    for name in ours:
        for role, prefix in ROLE_PREFIXES.items():
            if name.startswith(prefix) and name not in known[role]:
                found.append(f"{name}: unknown variable for role {role}")
        for path, text in _unsafe_strings(variables[name], name):
            unsafe[path] = text
    found.extend(f"{path}: {_describe_unsafe(text)}" for path, text in unsafe.items())
    check = _Collector(set(unsafe))

    check.int_range("hyperv_guest_vf_delay", variables.get("hyperv_guest_vf_delay"), 2, 3600)
    drivers = variables.get("hyperv_guest_vf_drivers")
    if isinstance(drivers, list):
        for index, driver in enumerate(drivers):
            check.matches(f"hyperv_guest_vf_drivers[{index}]", driver, DRIVER_NAME,
                          "a driver name (lower-case letters)")
    _check_interfaces(check, variables.get("hyperv_guest_interfaces"))

    for key in ("device", "hooks_dir", "state_file", "pidfile"):
        name = f"hyperv_vss_{key}"
        check.matches(name, variables.get(name), ABSOLUTE_PATH, "an absolute path")
    app_device = variables.get("hyperv_vss_app_device")
    if app_device:
        check.matches("hyperv_vss_app_device", app_device, ABSOLUTE_PATH, "an absolute path")
    excludes = variables.get("hyperv_vss_exclude")
    if isinstance(excludes, list):
        for index, glob in enumerate(excludes):
            check.matches(f"hyperv_vss_exclude[{index}]", glob, GLOB, "a mount point glob")
    check.int_range("hyperv_vss_freeze_timeout", variables.get("hyperv_vss_freeze_timeout"),
                    1, 3600)
    # A hook must finish inside the kernel's 15 s budget for the whole request.
    check.int_range("hyperv_vss_hook_timeout", variables.get("hyperv_vss_hook_timeout"), 1, 14)
    return found + check.problems


class FilterModule:
    """``hvbsd_problems``: ``{{ vars_to_check | hvbsd_problems }}`` -> list of problems."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"hvbsd_problems": problems}
