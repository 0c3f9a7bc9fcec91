"""The README's variables table is the one generated from the argument specs."""

from __future__ import annotations

from hvbsd.render.docs import BEGIN, END, variables_table
from hvbsd.render.engine import argument_specs


def test_readme_variables_table_matches_the_argument_specs(root):
    readme = (root / "README.md").read_text()
    assert BEGIN in readme and END in readme
    section = readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)]
    assert section == "\n" + variables_table(), (
        "README variables table is stale; regenerate it from hvbsd.render.docs.variables_table()")


def test_variables_table_lists_every_option_and_sub_option():
    table = variables_table()
    for options in argument_specs().values():
        for name, option in options.items():
            assert f"| `{name}` |" in table
            for sub in option.get("options", {}):
                assert f"`{name}[].{sub}`" in table
