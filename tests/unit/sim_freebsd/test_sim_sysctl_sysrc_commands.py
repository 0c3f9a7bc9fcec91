"""sysctl and sysrc: FreeBSD's output formats, messages and exit codes."""

from __future__ import annotations


def test_sysctl_n_prints_values_only(run_command):
    result = run_command("sysctl", "-n", "kern.vm_guest", "hw.hn.vf_transparent")
    assert (result.returncode, result.stdout) == (0, "hv\n1\n")


def test_sysctl_prints_name_colon_value_and_subtrees(run_command):
    assert run_command("sysctl", "kern.ostype").stdout == "kern.ostype: FreeBSD\n"
    assert run_command("sysctl", "-e", "hw.machine").stdout == "hw.machine=amd64\n"
    subtree = run_command("sysctl", "dev.hn.1").stdout.splitlines()
    assert "dev.hn.1.vf: " in subtree and all(line.startswith("dev.hn.1.") for line in subtree)


def test_sysctl_unknown_oid(run_command):
    result = run_command("sysctl", "hw.hn.nothing")
    assert (result.returncode, result.stderr) == (1, "sysctl: unknown oid 'hw.hn.nothing'\n")
    assert run_command("sysctl", "-q", "hw.hn.nothing").stderr == ""
    assert run_command("sysctl", "-i", "hw.hn.nothing").returncode == 0


def test_sysctl_read_only_and_tunable_refuse_writes(run_command):
    tunable = run_command("sysctl", "hw.hn.vf_transparent=0")
    assert tunable.returncode == 1
    assert tunable.stderr == (
        "sysctl: oid 'hw.hn.vf_transparent' is a read only tunable\n"
        "sysctl: Tunable values are set in /boot/loader.conf\n"
    )
    read_only = run_command("sysctl", "kern.ostype=Linux")
    assert (read_only.returncode, read_only.stderr) == (
        1,
        "sysctl: oid 'kern.ostype' is read only\n",
    )
    assert run_command("sysctl", "-n", "hw.hn.vf_transparent").stdout == "1\n"


def test_sysctl_sets_writable_oids_and_counts_failures(run_command):
    result = run_command("sysctl", "net.link.lagg.failover_rx_all=1", "kern.ostype=x", "no.such=1")
    assert result.stdout == "net.link.lagg.failover_rx_all: 0 -> 1\n"
    assert result.returncode == 2
    bad = run_command("sysctl", "net.link.lagg.failover_rx_all=yes")
    assert (bad.returncode, bad.stderr) == (1, "sysctl: invalid integer 'yes'\n")
    assert run_command("sysctl", "-n", "net.link.lagg.failover_rx_all").stdout == "1\n"


def _rc_tree(tmp_path):
    etc = tmp_path / "etc"
    (etc / "defaults").mkdir(parents=True)
    (etc / "defaults" / "rc.conf").write_text(
        f'rc_conf_files="{etc}/rc.conf {etc}/rc.conf.local"\nsshd_enable="NO"\n'
        "source_rc_confs() { for f in $rc_conf_files; do [ -r $f ] && . $f; done; }\n"
    )
    (etc / "rc.conf").write_text('hostname="g1"\nifconfig_hn0="SYNCDHCP"\n')
    return etc, {"RC_DEFAULTS": str(etc / "defaults" / "rc.conf")}


def test_sysrc_get_set_and_delete(run_command, tmp_path):
    etc, env = _rc_tree(tmp_path)
    assert run_command("sysrc", "hostname", env=env).stdout == "hostname: g1\n"
    assert run_command("sysrc", "-n", "sshd_enable", env=env).stdout == "NO\n"
    changed = run_command("sysrc", "sshd_enable=YES", env=env)
    assert (changed.returncode, changed.stdout) == (0, "sshd_enable: NO -> YES\n")
    assert (etc / "rc.conf").read_text().endswith('sshd_enable="YES"\n')
    assert run_command("sysrc", "-e", "sshd_enable", env=env).stdout == 'sshd_enable="YES"\n'
    run_command("sysrc", "hostname=g2", env=env)
    assert (etc / "rc.conf").read_text().startswith('hostname="g2"\n')
    assert run_command("sysrc", "-x", "sshd_enable", env=env).returncode == 0
    assert "sshd_enable" not in (etc / "rc.conf").read_text()
    assert run_command("sysrc", "-n", "sshd_enable", env=env).stdout == "NO\n"


def test_sysrc_unknown_variable(run_command, tmp_path):
    _, env = _rc_tree(tmp_path)
    result = run_command("sysrc", "nothing_here", env=env)
    assert (result.returncode, result.stderr) == (1, "sysrc: unknown variable 'nothing_here'\n")
    deleted = run_command("sysrc", "-x", "nothing_here", env=env)
    assert (deleted.returncode, deleted.stderr) == (1, "sysrc: unknown variable 'nothing_here'\n")


def test_sysrc_reads_rc_conf_local_last(run_command, tmp_path):
    etc, env = _rc_tree(tmp_path)
    (etc / "rc.conf.local").write_text('hostname="local"\n')
    assert run_command("sysrc", "-n", "hostname", env=env).stdout == "local\n"
    # the value is changed where it was last set
    run_command("sysrc", "hostname=again", env=env)
    assert (etc / "rc.conf.local").read_text() == 'hostname="again"\n'
    assert 'hostname="g1"' in (etc / "rc.conf").read_text()


def test_sysrc_f_uses_only_that_file(run_command, tmp_path):
    _, env = _rc_tree(tmp_path)
    other = tmp_path / "vssd"
    result = run_command("sysrc", "-f", str(other), "hvbsd_vssd_flags=-d", env=env)
    assert result.stdout == "hvbsd_vssd_flags:  -> -d\n"
    assert other.read_text() == 'hvbsd_vssd_flags="-d"\n'
    assert run_command("sysrc", "-f", str(other), "-n", "hostname", env=env).returncode == 1


def test_sysrc_writes_values_as_given_like_freebsd(run_command, tmp_path):
    # f_sysrc_set appends `name="value"` with the value as given: FreeBSD's
    # sysrc does not quote, so callers must never hand it hostile values.
    etc, env = _rc_tree(tmp_path)
    before = (etc / "rc.conf").read_text()
    result = run_command("sysrc", 'ifconfig_hn1=inet $(x) "y" `z`', env=env)
    assert result.returncode == 0
    assert (etc / "rc.conf").read_text() == before + 'ifconfig_hn1="inet $(x) "y" `z`"\n'


def test_sysrc_refuses_a_broken_rc_conf(run_command, tmp_path):
    etc, env = _rc_tree(tmp_path)
    (etc / "rc.conf").write_text('hostname="unterminated\n')
    result = run_command("sysrc", "hostname", env=env)
    assert result.returncode == 1
    assert result.stderr.endswith("sysrc: Exiting due to previous syntax errors\n")
