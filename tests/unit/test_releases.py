"""releases.yml is the one list of supported FreeBSD releases: the roles'
metadata and the README's support table are made from it, and a release name
from anywhere is either one of it or refused in one line."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hvbsd import releases
from hvbsd.locate import data_path
from hvbsd.render.docs import RELEASES_BEGIN, RELEASES_END, role_meta, support_table
from hvbsd.render.engine import ROLES, ROLES_DIR


def test_each_roles_metadata_lists_the_supported_releases():
    for role in ROLES:
        path = ROLES_DIR / role / "meta" / "main.yml"
        assert path.read_text() == role_meta(role), (
            f"{path} is stale; regenerate it with `python -m hvbsd.render.docs`")
        [platform] = yaml.safe_load(path.read_text())["galaxy_info"]["platforms"]
        assert platform == {"name": "FreeBSD", "versions": [
            release.name for release in releases.supported() if release.galaxy]}


def test_galaxy_flag_follows_the_platform_list_ansible_lint_checks():
    """A release is left out of the roles' metadata exactly while Galaxy's
    platform list (ansible-lint's meta schema) does not know it."""
    import json
    from pathlib import Path

    ansiblelint = pytest.importorskip("ansiblelint")
    schema = json.loads((Path(ansiblelint.__file__).parent / "schemas" / "meta.json").read_text())
    known = schema["$defs"]["FreeBSDPlatformModel"]["properties"]["versions"]["items"]["enum"]
    for release in releases.supported():
        assert release.galaxy == (release.name in known), (
            f"releases.yml: set galaxy for {release.name} to {release.name in known}")


def test_readme_support_table_is_the_generated_one():
    readme = data_path("README.md").read_text()
    section = readme[readme.index(RELEASES_BEGIN) + len(RELEASES_BEGIN):readme.index(RELEASES_END)]
    assert section == "\n" + support_table(), (
        "README support table is stale; regenerate it with `python -m hvbsd.render.docs`")
    for release in releases.supported():
        assert f"| {release.name}" in section and release.eol.isoformat() in section


def test_the_matrix_has_a_14_and_a_15_and_defaults_to_the_newest():
    names = releases.names()
    assert list(names) == sorted(names, key=lambda n: tuple(map(int, n.split("."))))
    majors = {release.major for release in releases.newest_per_major()}
    assert {14, 15} <= majors
    assert releases.default() == releases.supported()[-1]
    assert releases.oldest().name == names[0]
    for release in releases.supported():
        assert release.osrelease == f"{release.name}-RELEASE"
        major, minor = map(int, release.name.split("."))
        assert release.osreldate // 1000 == major * 100 + minor  # sys/sys/param.h layout
        assert release.stock in {"14", "15"} and release.stock == str(release.major)


def test_releases_past_their_end_of_life_are_not_offered():
    for gone in ("13.3", "13.4", "13.5", "14.1", "14.2", "14.3", "15.0"):
        assert gone not in releases.names()


@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.none(), st.booleans(),
                 st.lists(st.text(max_size=3), max_size=3), st.binary(max_size=8),
                 st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
                 st.sampled_from([b"15.1", 15.1, 14.5, ["15.1"], {"15.1": None}])))
def test_any_value_is_a_supported_release_or_refused_in_one_line(value):
    try:
        release = releases.get(value)
    except releases.UnknownRelease as error:
        message = str(error)
        assert "\n" not in message and len(message) < 200
        assert message.endswith("hvbsd supports FreeBSD " + ", ".join(releases.names()))
    else:
        assert release.name == value
