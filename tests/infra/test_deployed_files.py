"""The files hvbsd puts on a guest are there, as rendered, with their owners and modes."""

from __future__ import annotations

import pytest

# Tier 1: read-only.
pytestmark = pytest.mark.hvbsd_files


def test_host_is_freebsd(host):
    assert host.system_info.type == "freebsd"


def test_every_rendered_file_is_in_place_byte_for_byte(host, rendered):
    wrong = []
    for path, wanted in sorted(rendered.items()):
        installed = host.file(path)
        if not installed.exists:
            wrong.append(f"{path}: missing")
            continue
        content = installed.content
        expected = wanted.file_bytes()
        if wanted.block is not None:
            if expected not in content:
                wrong.append(f"{path}: the hvbsd managed block differs or is missing")
        elif content != expected:
            wrong.append(f"{path}: content differs from hvbsd render")
    assert wrong == [], "; ".join(wrong)


def test_rendered_files_belong_to_root_with_their_modes(host, rendered):
    wrong = []
    for path, wanted in sorted(rendered.items()):
        installed = host.file(path)
        if not installed.exists:
            continue  # reported by the content check
        if installed.uid != 0 or installed.gid != 0:
            wrong.append(f"{path}: owned by {installed.uid}:{installed.gid}, not root:wheel")
        if wanted.block is None and installed.mode != wanted.mode:
            wrong.append(f"{path}: mode {installed.mode:o}, not {wanted.mode:o}")
    assert wrong == [], "; ".join(wrong)


def test_files_the_configuration_does_not_want_are_absent(host, unwanted_paths):
    present = [path for path in unwanted_paths if host.file(path).exists]
    assert present == [], "present: " + ", ".join(present)


def test_installed_devd_rules_parse(host, rendered):
    from hvbsd.devd import parse_text

    path = "/usr/local/etc/devd/hvbsd.conf"
    config = parse_text(host.file(path).content_string, path)
    assert config.rules, "hvbsd.conf holds no rules"
    # devd itself starts from /etc/devd.conf and follows its directories
    from hvbsd.devd.config import load

    def read(name: str):
        found = host.file(name)
        return found.content_string if found.exists else None

    def listdir(name: str) -> list[str]:
        listed = host.run("ls -1 %s", name)
        return listed.stdout.split() if listed.rc == 0 else []

    loaded = load(read, listdir, "/etc/devd.conf")
    assert [rule for rule in loaded.rules if rule.file == path], \
        f"devd, starting from /etc/devd.conf, never reads {path}"


def test_installed_scripts_pass_sh_n(host, rendered):
    scripts = [path for path, wanted in rendered.items()
               if wanted.mode & 0o111 and wanted.content.startswith(b"#!/bin/sh")]
    failing = [path for path in scripts if host.run("sh -n %s", path).rc != 0]
    assert failing == [], "sh -n fails: " + ", ".join(failing)
