"""hvbsd.render: the templates rendered for a host, validated like the roles do."""

from __future__ import annotations

from hvbsd.render.engine import (
    InvalidVariables,
    RenderedFile,
    load_manifest,
    render_host,
    render_template,
    role_defaults,
    validate,
)

__all__ = [
    "InvalidVariables",
    "RenderedFile",
    "load_manifest",
    "render_host",
    "render_template",
    "role_defaults",
    "validate",
]
