"""What hvbsd configured is in effect on the booted host: loader, rc.conf, the VSS and
KVP daemons."""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest

LOADER = "/boot/loader.conf.d/hvbsd.conf"
RC_CONF = "/etc/rc.conf"
SETTING = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)=(\S.*?)?\s*$")
# One piece of a shell word: '...', "...", a ${name} or $name expansion, \c, or other text.
PIECE = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\$\{([A-Za-z_][A-Za-z0-9_]*)\}"""
                   r"""|\$([A-Za-z_][A-Za-z0-9_]*)|\\(.)|([^'"$\\\s]+)""")
IN_DOUBLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"
                       r"|\\([$`\"\\])|(.)", re.DOTALL)
ANY = object()  # where a $name expansion stands: whatever rc had in that variable

# Tier 2: read-only, safe on any production guest.
pytestmark = pytest.mark.hvbsd_settings


def _pieces(word: str) -> list[object] | None:
    """The literal text and expansions (ANY) of one sh word as sh(1) reads an assignment:
    '...' is literal, "..." and bare text expand $name and ${name}; None if it is not one
    word of those forms (such a line is not hvbsd's, and not checked)."""
    pieces: list[object] = []
    position = 0
    while position < len(word):
        match = PIECE.match(word, position)
        if match is None:
            return None
        single, double, braced, plain, escaped, bare = match.groups()
        if single is not None:
            pieces.append(single)
        elif double is not None:
            for inner in IN_DOUBLE.finditer(double):
                if inner.group(1) or inner.group(2):
                    pieces.append(ANY)
                else:
                    pieces.append(inner.group(3) or inner.group(4))
        elif braced or plain:
            pieces.append(ANY)
        else:
            pieces.append(escaped if escaped is not None else bare)
        position = match.end()
    return pieces


class Wanted(NamedTuple):
    """A setting as hvbsd wrote it and what rc may see for it."""

    written: str  # the value as written, quotes and all
    pieces: tuple[object, ...]

    @property
    def value(self) -> str:
        """The value without expansions (loader.conf has none)."""
        return "".join("" if piece is ANY else str(piece) for piece in self.pieces)

    def seen_by_rc(self, seen: str) -> bool:
        pattern = "".join(".*" if p is ANY else re.escape(str(p)) for p in self.pieces)
        return re.fullmatch(pattern, seen, re.DOTALL) is not None


def settings(text: str) -> dict[str, Wanted]:
    """name -> what rc may see for each ``name=value`` line of a loader.conf or rc.conf
    text: the value as sh reads it ('single', "double" and bare words), an expansion such
    as the ``${cloned_interfaces}`` of ``cloned_interfaces="${cloned_interfaces} lagg0"``
    standing for any text (" lagg0" when it was empty)."""
    found = {}
    for line in text.splitlines():
        match = SETTING.match(line.strip())
        if not match:
            continue
        pieces = _pieces(match.group(2) or "")
        if pieces is None:
            continue
        found[match.group(1)] = Wanted(match.group(2) or "", tuple(pieces))
    return found


def wants_vss_daemon(variables: dict) -> bool:
    return bool(variables.get("hyperv_vss_enable", True)) and \
        variables.get("hyperv_guest_vss_daemon", "hvbsd") == "hvbsd"


@pytest.mark.usefixtures("live")
def test_loader_tunables_are_in_effect_after_the_reboot(host, rendered):
    if LOADER not in rendered:
        pytest.skip("this configuration sets no loader tunables")
    wanted = {name: setting.value
              for name, setting in settings(rendered[LOADER].content.decode()).items()}
    assert wanted, f"{LOADER} as rendered sets nothing"
    has_kldstat = host.run("command -v kldstat").rc == 0
    wrong = []
    for name, value in sorted(wanted.items()):
        if name.endswith("_load"):
            # a module to load, not a sysctl; the simulated kernel has no modules
            module = name[: -len("_load")]
            if value.upper() == "YES" and has_kldstat and \
                    host.run("kldstat -q -m %s", module).rc != 0:
                wrong.append(f"{name}: module {module} is not loaded")
            continue
        now = host.run("sysctl -n %s", name)
        if now.rc != 0:
            wrong.append(f"{name}: sysctl failed: {now.stderr.strip()}")
        elif now.stdout.strip() != value:
            wrong.append(f"{name} is {now.stdout.strip()!r}, {LOADER} sets {value!r}"
                         " (not rebooted since the deploy?)")
    assert wrong == [], "; ".join(wrong)


@pytest.mark.usefixtures("live")
def test_rc_conf_settings_are_what_rc_sees(host, rendered):
    wanted = settings(rendered[RC_CONF].file_bytes().decode())
    assert wanted, "the hvbsd managed block of rc.conf sets nothing"
    wrong = []
    for name, value in sorted(wanted.items()):
        now = host.run("sysrc -n %s", name)
        seen = now.stdout[:-1] if now.stdout.endswith("\n") else now.stdout
        if now.rc != 0 or not value.seen_by_rc(seen):
            wrong.append(f"{name}: rc sees {seen!r} (exit {now.rc}), hvbsd sets"
                         f" {name}={value.written}")
    assert wrong == [], "; ".join(wrong)


@pytest.mark.usefixtures("live")
def test_vss_daemon_is_enabled_and_running(host, hvbsd_variables):
    if not wants_vss_daemon(hvbsd_variables):
        pytest.skip("this configuration does not run hvbsd_vssd")
    assert host.service("hvbsd_vssd").is_enabled, "hvbsd_vssd is not enabled in rc.conf"
    status = host.run("service hvbsd_vssd onestatus")
    assert status.rc == 0, f"service hvbsd_vssd onestatus: {status.stdout.strip()}"


@pytest.mark.usefixtures("live")
def test_vss_daemon_reports_thawed(host, hvbsd_variables):
    if not wants_vss_daemon(hvbsd_variables):
        pytest.skip("this configuration does not run hvbsd_vssd")
    status = host.run("/usr/local/sbin/hvbsd_vssd --status")
    assert status.rc == 0, f"hvbsd_vssd --status (exit {status.rc}): {status.stdout.strip()}"
    assert "thawed" in status.stdout


@pytest.mark.usefixtures("live")
def test_kvp_daemon_is_enabled_and_answers_where_the_host_offers_kvp(host, hvbsd_variables):
    if hvbsd_variables.get("hyperv_guest_kvp", "hvbsd") != "hvbsd":
        pytest.skip("this configuration does not run hvbsd_kvpd")
    if not host.file("/dev/hv_kvp_dev").exists:
        pytest.skip("no /dev/hv_kvp_dev: the host offers no KVP service (devd starts"
                    " hvbsd_kvpd when it appears)")
    assert host.service("hvbsd_kvpd").is_enabled, "hvbsd_kvpd is not enabled"
    status = host.run("/usr/local/sbin/hvbsd_kvpd --status")
    assert status.rc == 0, f"hvbsd_kvpd --status (exit {status.rc}): {status.stdout.strip()}"
    assert "lookup: hvbsd" in status.stdout, status.stdout
