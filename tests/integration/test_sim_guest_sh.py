"""Inside a simulated guest, /bin/sh is FreeBSD's sh (bash behaving as bin/sh).

The constructs themselves are pinned in tests/unit/sim_freebsd/test_guest_sh.py;
this checks that a guest's /bin/sh, ``sh`` on its PATH and ``#!/bin/sh``
scripts are that shell, with the rc file the guest was created with.
"""

from __future__ import annotations

import pytest

from hvbsd.sim import freebsd

pytestmark = pytest.mark.slow

FREEBSD_ONLY = (
    "case a in a) echo 1;& b) echo 2;; c) echo 3;; esac\n"
    "setvar v ok; echo $v\n"
    "set -- x; shift 2; echo shift=$?\n"
    "echo -n -e x; echo\n"
    "getopts a o -b; echo $0 $o\n"
)
FREEBSD_OUTPUT = ("1\n2\nok\nshift=1\n-e x\nsh ?\n", "Illegal option -b\n")


def test_bin_sh_is_freebsds_sh(sim_guest):
    for argv in (["/bin/sh", "-c", FREEBSD_ONLY], ["sh", "-c", FREEBSD_ONLY]):
        ran = sim_guest.exec(argv, text=True, timeout=60)
        assert (ran.stdout, ran.stderr, ran.returncode) == (*FREEBSD_OUTPUT, 0)
    wrapper = sim_guest.path(freebsd.SH_PATH).read_bytes()
    assert wrapper == freebsd.sh_wrapper(freebsd.host_bash())
    rc_file = sim_guest.path(freebsd.SH_RC).read_bytes()
    assert rc_file == (freebsd.COMMON_TREE / freebsd.SH_RC.lstrip("/")).read_bytes()


def test_shebang_scripts_run_as_freebsds_sh(sim_guest):
    script = "#!/bin/sh\n" + FREEBSD_ONLY.replace("$0", "${0##*/}") + "exit 4\n"
    ran = sim_guest.exec(
        ["/bin/sh", "-c", "cat > /tmp/t && chmod 755 /tmp/t && exec /tmp/t"],
        input=script,
        text=True,
        timeout=60,
    )
    stdout, stderr = FREEBSD_OUTPUT
    assert (ran.stdout, ran.stderr, ran.returncode) == (stdout.replace("sh ?", "t ?"), stderr, 4)


def test_rc_subr_runs_on_the_guests_sh(sim_guest):
    # rc.subr's ltr uses setvar, as FreeBSD's does.
    ran = sim_guest.exec(
        ["sh", "-c", ". /etc/rc.subr; ltr 'a b c' ' ' _ out; echo $out"],
        text=True,
        timeout=60,
    )
    assert (ran.stdout, ran.stderr, ran.returncode) == ("a_b_c\n", "", 0)
