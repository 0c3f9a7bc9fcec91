"""Each role's README is the one generated from its argument spec and metadata."""

from __future__ import annotations

import pytest
import yaml

from hvbsd.render.docs import role_readme, role_readme_path
from hvbsd.render.engine import ROLES, ROLES_DIR, argument_specs


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_matches_its_argument_spec(role):
    assert role_readme_path(role).read_text() == role_readme(role), (
        f"roles/{role}/README.md is stale; regenerate it with `python -m hvbsd.render.docs`")


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_lists_every_default_in_the_order_of_defaults(role):
    readme = role_readme(role)
    defaults = yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text())
    assert list(defaults) == list(argument_specs()[role]), (
        "defaults/main.yml and meta/argument_specs.yml list different variables")
    positions = []
    for name, value in defaults.items():
        shown = yaml.safe_dump({name: value}, default_flow_style=False, sort_keys=False)
        assert shown.rstrip("\n") in readme, name
        positions.append(readme.index(f"\n{name}:"))
    assert positions == sorted(positions)
    sections = ["## Role Variables", "## Requirements", "## Dependencies",
                "## Example Playbook", "## License"]
    assert [readme.index(s) for s in sections] == sorted(readme.index(s) for s in sections)
