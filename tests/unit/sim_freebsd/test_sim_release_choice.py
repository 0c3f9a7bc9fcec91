"""Which FreeBSD release a simulated guest is: only the supported ones, named exactly."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvbsd import releases
from hvbsd.sim.freebsd import base_files, stock_tree
from hvbsd.sim.guest import InvalidInput, check_release
from hvbsd.sim.kernel import Kernel


@pytest.mark.parametrize("release", releases.supported(), ids=lambda r: r.name)
def test_each_supported_release_is_accepted_by_name_and_as_itself(release):
    assert check_release(release.name) == release
    assert check_release(release) == release


def test_no_release_means_the_default_release():
    assert check_release(None) == releases.default()


@given(st.one_of(st.text(max_size=300), st.binary(max_size=40), st.integers(), st.floats(),
                 st.lists(st.text(max_size=5), max_size=3)))
def test_anything_else_is_one_line_naming_the_choices(value):
    if value in releases.names():
        return
    with pytest.raises(InvalidInput) as raised:
        check_release(value)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    assert len(message) < 200
    assert message.endswith("hvbsd supports FreeBSD " + ", ".join(releases.names()))
    assert raised.value.exit_status == 2


def test_every_release_has_its_stock_tree_and_nothing_else_does():
    for release in releases.supported():
        assert (stock_tree(release.stock) / "etc/devd.conf").is_file()
    for bad in ("13", "../common", "common", "", "14/../15", "1" * 50):
        with pytest.raises(ValueError, match="no simulated FreeBSD base files"):
            stock_tree(bad)
        with pytest.raises(ValueError):
            list(base_files(bad))


def test_a_stock_file_replaces_the_common_file_of_the_same_path():
    for release in releases.supported():
        files = [path for path, _content, _mode in base_files(release.stock)]
        assert len(files) == len(set(files))
        modes = {path: mode for path, _content, mode in base_files(release.stock)}
        assert modes["/etc/rc.d/netif"] == modes["/etc/pccard_ether"] == 0o755
        assert modes["/etc/devd.conf"] == modes["/etc/devd/hyperv.conf"] == 0o644


@pytest.mark.parametrize("release", releases.supported(), ids=lambda r: r.name)
def test_kernel_of_a_release_holds_its_version_sysctls(tmp_path, release):
    state = Kernel.create(tmp_path / "k", release=release).snapshot()
    assert state.sysctl_value("kern.osrelease") == release.osrelease
    assert state.sysctl_value("kern.osreldate") == release.osreldate
    assert state.sysctl_value("kern.version") == release.version_string + "\n"
    assert state.sysctl_value("kern.vm_guest") == "hv"


def test_kernel_without_a_release_is_the_default_release(tmp_path):
    state = Kernel.create(tmp_path / "k").snapshot()
    assert state.sysctl_value("kern.osrelease") == releases.default().osrelease


def test_the_cli_offers_exactly_the_supported_releases():
    from hvbsd.sim.cli import register

    parser = argparse.ArgumentParser(prog="hvbsd")
    register(parser.add_subparsers(dest="command"))
    text = parser.parse_args(["sim", "guest", "create", "g1", "--release", "14.5"])
    assert text.release == "14.5"
    defaults = parser.parse_args(["sim", "guest", "create", "g1"])
    assert defaults.release is None  # Guest.create then takes releases.default()
