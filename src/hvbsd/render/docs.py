"""The README's variables table, generated from the roles' argument specs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hvbsd.render.engine import argument_specs

BEGIN = "<!-- BEGIN VARIABLES -->"
END = "<!-- END VARIABLES -->"


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
