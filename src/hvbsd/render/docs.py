"""Documentation generated from the roles' argument specs and releases.yml: the
README's variables and support tables, each role's README and the FreeBSD
versions of each role's metadata (``python -m hvbsd.render.docs`` rewrites
them all in a checkout)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hvbsd import releases
from hvbsd.render.engine import ROLES, ROLES_DIR, argument_specs

BEGIN = "<!-- BEGIN VARIABLES -->"
END = "<!-- END VARIABLES -->"
RELEASES_BEGIN = "<!-- BEGIN RELEASES -->"
RELEASES_END = "<!-- END RELEASES -->"
_VERSIONS = re.compile(r'(?m)^(?P<indent> +)versions:\n(?:(?P=indent)  - "[^"\n]*"\n)+')


def _type(option: Mapping[str, Any]) -> str:
    kind = option.get("type", "str")
    if kind == "list":
        kind = f"list of {option.get('elements', 'str')}"
    if "choices" in option:
        kind += ": " + " / ".join(str(choice) for choice in option["choices"])
    return kind


def _default(option: Mapping[str, Any]) -> str:
    if "default" not in option:
        return "required" if option.get("required") else ""
    return "`" + json.dumps(option["default"]) + "`"


def _rows(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    rows = []
    for name, option in options.items():
        text = str(option.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {_type(option)} | {_default(option)} | {text} |")
        if "options" in option:
            child = f"{prefix}{name}[]." if option.get("type") == "list" else f"{prefix}{name}."
            rows.extend(_rows(option["options"], child))
    return rows


def variables_table() -> str:
    """Markdown for the text between the README's BEGIN/END VARIABLES markers."""
    lines = []
    for role, options in argument_specs().items():
        lines += ["", f"Role `{role}`:", "",
                  "| variable | type | default | meaning |", "|---|---|---|---|"]
        lines += _rows(options)
    return "\n".join(lines[1:]) + "\n"


def support_table() -> str:
    """Markdown for the text between the README's BEGIN/END RELEASES markers."""
    lines = ["| FreeBSD | supported until | devd sets `vm_guest` | Vagrant box (VirtualBox)"
             " | Vagrant box (other providers) | in the roles' metadata |",
             "|---|---|---|---|---|---|"]
    not_in_galaxy = "no: Galaxy's platform list does not know it yet"
    for release in releases.supported():
        default = " (default)" if release == releases.default() else ""
        lines.append(f"| {release.name}{default} | {release.eol.isoformat()} | "
                     f"{'yes' if release.devd_vm_guest else 'no'} | "
                     f"`{release.box('virtualbox')}` | `{release.box('default')}` | "
                     f"{'yes' if release.galaxy else not_in_galaxy} |")
    return "\n".join(lines) + "\n"


def role_meta(role: str) -> str:
    """The role's meta/main.yml with its FreeBSD versions those of releases.yml."""
    path = ROLES_DIR / role / "meta" / "main.yml"
    text = path.read_text(encoding="utf-8")
    match = _VERSIONS.search(text)
    if match is None:
        raise ValueError(f"{path}: no platforms versions list")
    indent = match["indent"]
    listed = "".join(f'{indent}  - "{release.name}"\n' for release in releases.supported()
                     if release.galaxy)
    return text[:match.start()] + f"{indent}versions:\n{listed}" + text[match.end():]


def write_role_metas() -> list[Path]:
    changed = []
    for role in ROLES:
        path = ROLES_DIR / role / "meta" / "main.yml"
        text = role_meta(role)
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


# -- role READMEs -------------------------------------------------------------

_REQUIREMENTS = {
    "hyperv_guest": [
        "Python 3 on the guest at `/usr/local/bin/python3` (`hyperv_vss` installs it"
        " with pkg; `deploy.yml` applies that role first).",
        "The templates of this repository (`templates/`, listed in"
        " `templates/manifest.yml`) beside `roles/`.",
    ],
    "hyperv_vss": [
        "`pkg` on the guest when Python 3 is missing: the role installs `python3`"
        " with it (through `raw`, as ansible-core has no pkg module).",
        "hvbsd installed on the controller, in the Python that runs Ansible: the daemon"
        " is built there (`python3 -m hvbsd bundle-vssd`) once per run.",
        "The templates of this repository (`templates/`) and `docs/hvbsd_vssd.8`"
        " beside `roles/`.",
    ],
}

_EXAMPLE_VARS = {
    "hyperv_guest": {
        "hyperv_guest_mode": "lagg",
        "hyperv_guest_vf_delay": 120,
        "hyperv_guest_interfaces": [{"name": "hn0", "ipv4": "syncdhcp"}],
    },
    "hyperv_vss": {
        "hyperv_vss_exclude": ["/var/db/scratch"],
        "hyperv_vss_hooks": [{"name": "10-postgresql", "src": "files/vss/postgresql"}],
    },
}


def _role_meta(role: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLES_DIR / role / "meta" / "main.yml").read_text(encoding="utf-8"))
    return dict(data)


def _role_spec(role: str) -> dict[str, Any]:
    path = ROLES_DIR / role / "meta" / "argument_specs.yml"
    return dict(yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"]["main"])


def _yaml_block(data: Any) -> list[str]:
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, width=100)
    return ["```yaml", *text.rstrip("\n").split("\n"), "```"]


def _variable_section(options: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, option in options.items():
        default = option.get("default")
        lines += ["", *_yaml_block({name: default}), ""]
        lines.append(f"{option.get('description', '')} ({_type(option)})")
        if "options" in option:
            lines += ["", "Keys of each entry:" if option.get("type") == "list" else "Keys:",
                      "", "| key | type | default | meaning |", "|---|---|---|---|"]
            lines += _rows(option["options"])
    return lines


def role_readme(role: str) -> str:
    """The README of one role: Role Variables (the argument spec, in the order and
    with the defaults of defaults/main.yml), Requirements, Dependencies, Example
    Playbook, License."""
    spec = _role_spec(role)
    meta = _role_meta(role)
    info = meta["galaxy_info"]
    description = spec.get("description", [])
    if isinstance(description, str):
        description = [description]
    lines = [f"# {role}", "", str(spec.get("short_description", "")).rstrip(".") + ".", ""]
    lines += [str(paragraph) for paragraph in description]
    lines += ["", "This file is generated from `meta/argument_specs.yml` and `meta/main.yml`"
              " (`python -m hvbsd.render.docs`); edit those, not this file.", "",
              "## Role Variables", "",
              "Every variable, with its default from `defaults/main.yml`. Ansible checks"
              " them against `meta/argument_specs.yml` before the role changes anything;"
              " the `hvbsd_problems` filter then checks what a spec cannot (names,"
              " addresses, shell safety) and the role stops listing every problem."]
    lines += _variable_section(spec["options"])
    platforms = "FreeBSD " + " / ".join(releases.names())  # releases.yml, Galaxy or not
    lines += ["", "## Requirements", "",
              f"- ansible-core >= {info.get('min_ansible_version')}, no collections.",
              f"- Guests: {platforms}, on Hyper-V or Azure."]
    lines += [f"- {text}" for text in _REQUIREMENTS.get(role, [])]
    dependencies = meta.get("dependencies") or []
    lines += ["", "## Dependencies", ""]
    lines.append("None." if not dependencies else ", ".join(str(d) for d in dependencies))
    playbook = [{"name": f"Apply {role}", "hosts": "hyperv_guests", "gather_facts": False,
                 "roles": [{"role": role, **_EXAMPLE_VARS.get(role, {})}]}]
    lines += ["", "## Example Playbook", "",
              "`deploy.yml` applies both roles; one role alone:", "", *_yaml_block(playbook)]
    lines += ["", "## License", "", str(info.get("license")), ""]
    return "\n".join(lines)


def role_readme_path(role: str) -> Path:
    return ROLES_DIR / role / "README.md"


def write_role_readmes() -> list[Path]:
    """Rewrite every role's README from its specs; returns the files that changed."""
    changed = []
    for role in ROLES:
        path = role_readme_path(role)
        text = role_readme(role)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def _between(text: str, begin: str, end: str, body: str) -> str:
    head, found, rest = text.partition(begin + "\n")
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise ValueError(f"README.md has no {begin} ... {end} section")
    return head + begin + "\n" + body + end + tail


def write_readme_table(readme: Path) -> bool:
    """Rewrite the README's variables and support tables; True if it changed."""
    text = readme.read_text(encoding="utf-8")
    new = _between(text, BEGIN, END, variables_table())
    new = _between(new, RELEASES_BEGIN, RELEASES_END, support_table())
    if new == text:
        return False
    readme.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    for written in write_role_metas() + write_role_readmes():
        print(f"wrote {written}")
    top_readme = ROLES_DIR.parent / "README.md"
    if write_readme_table(top_readme):
        print(f"wrote {top_readme}")
