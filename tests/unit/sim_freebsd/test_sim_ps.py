"""ps(1) with FreeBSD's options and keywords, as rc.subr's _find_processes reads it:
``/bin/ps -ww -o pid= -o jid= -o command= -ax`` and ``... -p PID``, jid 0 for the host."""

from __future__ import annotations

import select
import subprocess
import sys

from hvbsd.sim.freebsd import SH_NAME
from hvbsd.sim.freebsd.ps import shown_argv


def _started(argv: list[str]) -> subprocess.Popen:
    """A child that has exec'd (its /proc cmdline is argv), not one between fork and exec."""
    child = subprocess.Popen(argv)
    wanted = ("\0".join(argv) + "\0").encode()
    for _ in range(1000):
        with open(f"/proc/{child.pid}/cmdline", "rb") as stream:
            if stream.read() == wanted:
                return child
        select.select([], [], [], 0.01)
    raise AssertionError("the child never exec'd")


def test_rc_subr_columns_for_one_pid(run_command):
    child = _started(["sleep", "30"])
    try:
        result = run_command("ps", "-ww", "-o", "pid=", "-o", "jid=", "-o", "command=", "-p",
                             str(child.pid))
        assert result.returncode == 0
        assert result.stdout.split() == [str(child.pid), "0", "sleep", "30"]
        everyone = run_command("ps", "-ww", "-o", "pid=", "-o", "jid=", "-o", "command=", "-ax")
        rows = [line.split() for line in everyone.stdout.splitlines()]
        assert [str(child.pid), "0", "sleep", "30"] in rows
        assert all(row[1] == "0" for row in rows)
    finally:
        child.kill()
        child.wait()


def test_headers_and_no_match(run_command):
    result = run_command("ps", "-o", "pid,jid,command", "-p", "999999")
    assert (result.returncode, result.stdout) == (1, "PID JID COMMAND\n")
    renamed = run_command("ps", "-o", "pid=ID", "-p", "999999")
    assert renamed.stdout == "ID\n"


def test_unknown_keyword(run_command):
    result = run_command("ps", "-o", "bogus")
    assert result.returncode == 1
    assert result.stderr.startswith("ps: bogus: keyword not found\n")


def test_simulated_commands_show_as_freebsd_programs():
    python = sys.executable
    assert shown_argv([python, "-m", "hvbsd.sim.freebsd", "daemon", "-p", "/x"], "python3") == [
        "/usr/sbin/daemon",
        "-p",
        "/x",
    ]
    assert shown_argv([python, "-m", "hvbsd.sim.freebsd.dhclient", "hn0"], "python3") == [
        "/sbin/dhclient",
        "hn0",
    ]
    titled = ["dhclient: hn0", "-m", "hvbsd.sim.freebsd.dhclient", "{}"]
    assert shown_argv(titled, "dhclient") == ["dhclient: hn0"]
    assert shown_argv([], "kthread") == ["[kthread]"]


def test_rc_subr_finds_a_daemon_in_the_guest(guest_root):
    # _find_processes: the first word of command against procname, jid against $JID (0)
    script = (
        "daemon -p /var/run/sleeper.pid sleep 30; "
        "pid=$(cat /var/run/sleeper.pid); "
        "/bin/ps -ww -o pid= -o jid= -o command= -p $pid | "
        "while read _npid _jid _arg0 _argv; do "
        '  case "$_arg0" in sleep|/bin/sleep) [ "$_jid" -eq 0 ] && echo "found $_npid";; esac; '
        "done; "
        "/bin/ps -ww -o pid= -o jid= -o command= -ax | "
        "awk '$3 == \"daemon:\" && $4 ~ /^sleep/ { n++ } END { print n }'; "
        "/bin/ps -ww -o command= -ax | grep -c '^/bin/ps '; "
        "kill $pid"
    )
    result = guest_root.sh(script)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("found ") and lines[0].split()[1].isdigit()
    assert lines[1:3] == ["1", "1"]  # the daemon's title, and ps lists itself as FreeBSD's does


def test_lines_are_cut_without_ww(run_command):
    argv = [sys.executable, "-c", "import time; time.sleep(30)", *["x" * 20] * 10]
    child = _started(argv)
    try:
        pid = str(child.pid)
        columns = ["-o", "pid=", "-o", "command=", "-p", pid]
        narrow = run_command("ps", *columns, env={"COLUMNS": ""})
        assert len(narrow.stdout.rstrip("\n")) == 79
        wide = run_command("ps", "-w", *columns, env={"COLUMNS": ""})
        assert len(wide.stdout.rstrip("\n")) == 131
        full = run_command("ps", "-ww", "-o", "pid=", "-o", "command=", "-p", pid)
        assert full.stdout.rstrip("\n").split(" ", 1)[1].lstrip() == " ".join(argv)
    finally:
        child.kill()
        child.wait()


def test_a_header_takes_the_rest_of_its_word(run_command):
    # FreeBSD's ps: "pid=,command=" is pid headed ",command="
    result = run_command("ps", "-o", "pid=,command=", "-p", "999999")
    assert result.stdout == ",command=\n"


def test_a_simulated_command_is_named_as_freebsd_names_it(run_command):
    listed = run_command("ps", "-ww", "-o", "pid=", "-o", "comm=", "-o", "command=", "-ax")
    own = [line.split(None, 2) for line in listed.stdout.splitlines() if " /bin/ps " in line]
    assert own and all(row[1] == "ps" for row in own)


def test_command_column_is_one_line_whatever_the_arguments(run_command):
    # bin/ps/print.c: strvis(VIS_TAB | VIS_NL | VIS_NOSLASH) of the arguments
    code = "import time; time.sleep(30)"
    child = _started([sys.executable, "-c", code, "a\nb\tc\x01\\d\xe9"])
    try:
        result = run_command("ps", "-ww", "-o", "pid=", "-o", "command=", "-p", str(child.pid))
        shown = f"{sys.executable} -c {code} a\\012b\\011c^A\\dM-CM-)"
        assert result.stdout == f"{child.pid} {shown}\n"
    finally:
        child.kill()
        child.wait()


def test_the_guests_sh_shows_as_bin_sh():
    # what the guest's /bin/sh wrapper execs: bash named SH_NAME
    assert shown_argv([SH_NAME, "/usr/local/bin/hook", "freeze"], "bash") == [
        "/bin/sh", "/usr/local/bin/hook", "freeze"]
