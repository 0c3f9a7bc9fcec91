"""ps(1) with FreeBSD's options and keywords, as rc.subr's _find_processes reads it:
``/bin/ps -ww -o pid= -o jid= -o command= -ax`` and ``... -p PID``, jid 0 for the host."""

from __future__ import annotations

import subprocess
import sys

from hvbsd.sim.freebsd.ps import shown_argv


def test_rc_subr_columns_for_one_pid(run_command):
    child = subprocess.Popen(["sleep", "30"])
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
