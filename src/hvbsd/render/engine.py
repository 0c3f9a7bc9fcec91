"""Render hvbsd's templates for one host, the way Ansible's template module would.

The manifest (templates/manifest.yml) says which files exist; the roles'
defaults and argument specs say which variables exist. Validation is
the collection's ``hvbsd_checks`` filter plugin, loaded from its file so
there is one copy, driven by the roles' argument specs.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any, Callable, Optional

import jinja2
import yaml

from hvbsd.locate import data_path

TEMPLATES_DIR = data_path("templates")
ROLES_DIR = data_path("roles")
ROLES = ("hyperv_guest", "hyperv_vss")
CHECKS_FILE = data_path("plugins", "filter", "hvbsd_checks.py")


class InvalidVariables(ValueError):
    """The variables were refused; ``problems`` lists every reason with its path."""

    def __init__(self, problems: list[str], source: str = "variables") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclasses.dataclass(frozen=True)
class RenderedFile:
    """One file for the guest: its content, mode and who owns it."""

    path: str
    content: bytes
    mode: int
    role: str
    restart: str
    output: str
    block: Optional[tuple[str, str]] = None  # (begin, end) marker lines of a managed block

    def file_bytes(self) -> bytes:
        """The bytes of the whole file at ``path`` (markers included for a block)."""
        if self.block is None:
            return self.content
        begin, end = self.block
        body = self.content if self.content.endswith(b"\n") or not self.content else (
            self.content + b"\n")
        return begin.encode() + b"\n" + body + end.encode() + b"\n"


@dataclasses.dataclass(frozen=True)
class Output:
    name: str
    template: str
    path: str
    mode: int
    role: str
    restart: str
    when: str
    per_interface: Optional[str]
    block: bool


@dataclasses.dataclass(frozen=True)
class Manifest:
    switches: dict[str, tuple[Optional[str], Any]]
    outputs: tuple[Output, ...]
    loop_var: str
    block_markers: tuple[str, str]


@cache
def load_manifest() -> Manifest:
    path = TEMPLATES_DIR / "manifest.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    block = data["managed_block"]
    markers = (
        block["marker"].replace("{mark}", block["marker_begin"]),
        block["marker"].replace("{mark}", block["marker_end"]),
    )
    outputs = tuple(
        Output(
            name=entry["name"],
            template=entry["template"],
            path=entry["path"],
            mode=int(entry["mode"], 8),
            role=entry["role"],
            restart=entry["restart"],
            when=entry["when"],
            per_interface=entry.get("per_interface"),
            block=bool(entry.get("block", False)),
        )
        for entry in data["outputs"]
    )
    switches = {
        name: (rule["variable"], rule["equals"]) for name, rule in data["switches"].items()
    }
    for output in outputs:
        if output.when not in switches:
            raise ValueError(f"{path}: output {output.name}: unknown switch {output.when!r}")
    return Manifest(switches, outputs, data["loop_var"], markers)


@cache
def _read_role_defaults() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for role in ROLES:
        path = ROLES_DIR / role / "defaults" / "main.yml"
        merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def role_defaults() -> dict[str, Any]:
    """Every role default (defaults/main.yml of each role), merged: the caller's own
    copy (the files are read once), so changing it changes no later render."""
    return copy.deepcopy(_read_role_defaults())


@cache
def argument_specs() -> dict[str, dict[str, Any]]:
    """Role -> the options of its ``main`` entry point (read by the checks, once)."""
    specs: dict[str, dict[str, Any]] = checks_module().schema()
    return specs


@cache
def checks_module() -> ModuleType:
    """The roles' check module (problems, host_name_problem, the grammars)."""
    spec = importlib.util.spec_from_file_location("hvbsd_role_checks", CHECKS_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {CHECKS_FILE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extra_checks() -> Callable[[Mapping[str, Any]], list[str]]:
    """The roles' ``hvbsd_problems`` filter function."""
    check: Callable[[Mapping[str, Any]], list[str]] = checks_module().problems
    return check


# -- validation ------------------------------------------------------------------


def validate(variables: Mapping[str, Any]) -> list[str]:
    """Every problem in a host's variables (defaults applied), each naming its path.

    ``variables`` may hold any other variables too; only hvbsd's are checked,
    by the roles' own check (exact types, bounds, grammars), never after a
    conversion.
    """
    return extra_checks()({**role_defaults(), **variables})


# -- rendering ------------------------------------------------------------------


def _ansible_filters() -> dict[str, Callable[..., Any]]:
    """The non-Jinja filters the templates use, as ansible-core defines them."""
    from ansible.plugins.filter.core import quote, regex_replace, to_bool

    return {"quote": quote, "regex_replace": regex_replace, "bool": to_bool}


@cache
def environment() -> jinja2.Environment:
    """Jinja2 set up as ansible.builtin.template does by default (see render_template)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=False,
        newline_sequence="\n",
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    env.filters.update(_ansible_filters())
    return env


@cache
def _template(name: str) -> tuple[jinja2.Template, int]:
    source = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    return environment().get_template(name), _trailing_newlines(source)


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


@cache
def _template_variables(name: str) -> tuple[str, ...]:
    """The variables a template reads (from its source, once)."""
    from jinja2 import meta

    source = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    return tuple(sorted(meta.find_undeclared_variables(environment().parse(source))))


def _frozen(value: Any) -> Any:
    """A hashable image of plain YAML data, distinguishing types (1, True, "1")."""
    if type(value) in (str, int, bool, float) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_frozen(v) for v in value))
    return (type(value).__name__, value)


_RENDERED: dict[tuple[str, Any], bytes] = {}
_RENDERED_LIMIT = 4096


def render_template(name: str, context: Mapping[str, Any],
                    frozen: Optional[dict[str, Any]] = None) -> bytes:
    """One template, byte for byte what ansible.builtin.template writes.

    Ansible renders without keep_trailing_newline, then appends the newlines
    the template ended with that the rendering lost. Results are remembered
    by the values of the variables the template reads, so hosts that share
    settings share the work.
    """
    if frozen is None:
        frozen = {}
    try:
        key_parts = []
        for var in _template_variables(name):
            if var not in frozen:
                frozen[var] = _frozen(context.get(var))
            key_parts.append(frozen[var])
        key = (name, tuple(key_parts))
        cached = _RENDERED.get(key)
    except TypeError:  # unhashable leaf: render without the cache
        key, cached = None, None
    if cached is not None:
        return cached
    rendered = _render_uncached(name, context)
    if key is not None:
        if len(_RENDERED) >= _RENDERED_LIMIT:
            _RENDERED.clear()
        _RENDERED[key] = rendered
    return rendered


def _render_uncached(name: str, context: Mapping[str, Any]) -> bytes:
    template, wanted = _template(name)
    text = template.render(context)
    missing = wanted - _trailing_newlines(text)
    if missing > 0:
        text += "\n" * missing
    return text.encode("utf-8")


def switches(variables: Mapping[str, Any]) -> dict[str, bool]:
    """The manifest's switches for these (merged) variables."""
    state = {}
    for name, (variable, equals) in load_manifest().switches.items():
        state[name] = variable is None or variables.get(variable) == equals
    return state


def render_validated(merged: Mapping[str, Any]) -> dict[str, RenderedFile]:
    """Render already validated, defaults-merged variables: guest path -> file."""
    manifest = load_manifest()
    state = switches(merged)
    files: dict[str, RenderedFile] = {}
    frozen: dict[str, Any] = {}  # each variable's cache key, computed once per host
    for output in manifest.outputs:
        if not state[output.when]:
            continue
        block = manifest.block_markers if output.block else None
        if output.per_interface is None:
            content = render_template(output.template, merged, frozen)
            files[output.path] = RenderedFile(output.path, content, output.mode, output.role,
                                              output.restart, output.name, block)
            continue
        for interface in merged.get("hyperv_guest_interfaces") or []:
            if not interface.get(output.per_interface):
                continue
            path = output.path + interface["name"]
            context = {**merged, manifest.loop_var: interface}
            content = render_template(output.template, context)
            files[path] = RenderedFile(path, content, output.mode, output.role,
                                       output.restart, output.name, block)
    return dict(sorted(files.items()))


def render_host(variables: Mapping[str, Any], source: str = "variables"
                ) -> dict[str, RenderedFile]:
    """Validate and render one host: guest path -> RenderedFile.

    Raises InvalidVariables (listing every problem) before rendering anything.
    """
    problems = validate(variables)
    if problems:
        raise InvalidVariables(problems, source)
    return render_validated({**role_defaults(), **variables})
