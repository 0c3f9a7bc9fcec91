"""sysrc(8) at the boundaries of names and values (hypothesis).

Derived from FreeBSD's usr.sbin/sysrc/sysrc (name validation: what precedes the
first of ``%#+=-`` must be VALID_VARNAME_CHARS, else the whole run stops before
any change) and sysrc.subr's f_sysrc_set (a value without ``"``, ``\\``, ``$``
or a backquote is written inside double quotes and reads back unchanged).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import string
import tempfile
from pathlib import Path
from typing import Iterator

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hvbsd.sim.freebsd import sysrc

SAFE_VALUES = st.text(
    alphabet=st.characters(
        blacklist_characters='"\\$`\n\r\x00', blacklist_categories=("Cs", "Cc")
    ),
    max_size=40,
)
IDENTIFIERS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
BAD_NAMES = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(alphabet=string.ascii_letters + "_", max_size=5),
    st.characters(
        blacklist_characters=string.ascii_letters + string.digits + "_%#+=-",
        blacklist_categories=("Cs",),
    ),
    st.text(max_size=5),
)
RC_CONF = 'hostname="g1"\nkeep="this line"  # and its comment\n'


@contextlib.contextmanager
def _tree() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        etc = Path(directory)
        (etc / "defaults.conf").write_text(
            f'rc_conf_files="{etc}/rc.conf"\n'
            'source_rc_confs() { for f in $rc_conf_files; do [ -r "$f" ] && . "$f"; done; }\n'
        )
        (etc / "rc.conf").write_text(RC_CONF)
        saved = {key: os.environ.get(key) for key in ("RC_DEFAULTS", "RC_CONFS")}
        os.environ["RC_DEFAULTS"] = str(etc / "defaults.conf")
        os.environ.pop("RC_CONFS", None)
        try:
            yield etc
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = sysrc.run(argv)
    return status, out.getvalue(), err.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=IDENTIFIERS, value=SAFE_VALUES)
def test_a_safe_value_reads_back_as_written(name, value):
    with _tree() as etc:
        status, _, err = _run([f"{name}={value}"])
        assert (status, err) == (0, "")
        text = (etc / "rc.conf").read_text()
        assert 'keep="this line"  # and its comment\n' in text
        if name not in ("hostname", "keep"):
            assert text == RC_CONF + f'{name}="{value}"\n'
        assert _run(["-n", name]) == (0, value.rstrip("\n") + "\n", "")
        # changing it again rewrites that line in place
        assert _run([f"{name}={value}x"])[0] == 0
        assert _run(["-n", name])[1] == value + "x\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=BAD_NAMES, value=SAFE_VALUES)
def test_an_invalid_name_changes_nothing(bad, value):
    with _tree() as etc:
        argument = f"{bad}={value}"
        # ${name%%:[+=-]*} and then ${name%%[%#+=-]*}
        shown = re.sub(r"[%#+=-].*", "", re.sub(r":[+=-].*", "", argument, flags=re.S), flags=re.S)
        assume(any(c not in sysrc.VALID for c in shown))
        status, out, err = _run(["hostname=changed", argument, "other=1"])
        assert (status, out) == (1, "")
        assert err == f"sysrc: {shown}: name contains characters not allowed in shell\n"
        assert (etc / "rc.conf").read_text() == RC_CONF


def test_a_fifo_among_the_files_does_not_hang_a_delete(tmp_path, monkeypatch, capfd):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "defaults.conf").write_text(
        f'rc_conf_files="{fifo}"\nsource_rc_confs() {{ :; }}\nx=1\n'
    )
    monkeypatch.setenv("RC_DEFAULTS", str(tmp_path / "defaults.conf"))
    monkeypatch.setattr(sysrc, "TIMEOUT", 2)
    assert sysrc.run(["-x", "x"]) == 1  # sh -n of the FIFO gives up: a message, not a hang
    assert "gave up after 2 seconds" in capfd.readouterr().err
