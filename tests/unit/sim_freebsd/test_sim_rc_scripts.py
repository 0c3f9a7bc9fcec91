"""rc.subr, network.subr and the rc.d scripts, run by real /bin/sh inside a throwaway guest root."""

from __future__ import annotations

import sys

from hvbsd.sim.kernel import Kernel

RC_SCRIPT = """#!/bin/sh
#
# PROVIDE: sleeper
# REQUIRE: DAEMON
# KEYWORD: shutdown

. /etc/rc.subr

name="sleeper"
rcvar="sleeper_enable"
pidfile="/var/run/${name}.pid"
command="/usr/sbin/daemon"
command_args="-f -P ${pidfile} /bin/sleep 300"
procname="daemon"

load_rc_config $name
: "${sleeper_enable:=NO}"
run_rc_command "$1"
"""

PYTHON_RC_SCRIPT = """#!/bin/sh
#
# PROVIDE: pyd

. /etc/rc.subr

name="pyd"
rcvar="pyd_enable"
pidfile="/var/run/${name}.pid"
procname="/usr/local/libexec/pyd.py"
command="/usr/sbin/daemon"
command_args="-f -p ${pidfile} ${procname}"
command_interpreter="%s"
required_files="/usr/local/etc/pyd.conf"

load_rc_config $name
: "${pyd_enable:=NO}"
run_rc_command "$1"
"""


def test_service_runs_a_freebsd_style_rc_script(guest_root):
    guest_root.write("/usr/local/etc/rc.d/sleeper", RC_SCRIPT, 0o755)
    result = guest_root.sh(
        "service sleeper start; echo rc=$?;"
        "service sleeper onestart; echo rc=$?;"
        "service sleeper onestatus; echo rc=$?;"
        "service sleeper onestart; echo rc=$?;"
        "service sleeper onestop; echo rc=$?;"
        "service sleeper onestatus; echo rc=$?;"
        "service sleeper onestop; echo rc=$?"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Cannot 'start' sleeper. Set sleeper_enable to YES in /etc/rc.conf "
        "or use 'onestart' instead of 'start'."
    )
    assert lines[1:4] == ["rc=0", "Starting sleeper.", "rc=0"]
    assert lines[4].startswith("sleeper is running as pid ")
    pid = lines[4].split()[-1].rstrip(".")
    assert lines[5:7] == ["rc=0", "rc=1"]
    assert lines[7] == "Stopping sleeper."
    assert lines[8] == f"Waiting for PIDS: {pid}."
    assert lines[9:] == ["rc=0", "sleeper is not running.", "rc=1", "rc=1"]
    # rc.subr echoes "already running? " and "(pid=N).": two spaces
    assert f"sleeper already running?  (pid={pid}).\n" in result.stderr
    assert "sleeper not running? (check /var/run/sleeper.pid).\n" in result.stderr


def test_service_enable_rcvar_and_listing(guest_root):
    guest_root.write("/usr/local/etc/rc.d/sleeper", RC_SCRIPT, 0o755)
    result = guest_root.sh(
        "service sleeper enabled; echo rc=$?;"
        "service sleeper rcvar;"
        "sysrc sleeper_enable=YES;"
        "service sleeper enabled; echo rc=$?;"
        "service -e; service -l | grep -x sleeper;"
        "service nosuch start; echo rc=$?"
    )
    assert result.stdout.splitlines()[:6] == [
        "rc=1",
        "# sleeper",
        "#",
        'sleeper_enable="NO"',
        '#   (default: "")',
        "",
    ]
    # the NO came from the script's default, not from rc.conf: sysrc saw it unset
    assert "sleeper_enable:  -> YES\nrc=0\n" in result.stdout
    assert "/usr/local/etc/rc.d/sleeper\n" in result.stdout
    assert "\nsleeper\n" in result.stdout
    assert result.stdout.endswith("rc=1\n")
    assert "nosuch does not exist in /etc/rc.d or the local startup\n" in result.stderr


def test_command_interpreter_scripts_are_found_by_their_shebang(guest_root):
    guest_root.write(
        "/usr/local/libexec/pyd.py",
        f"#!{sys.executable}\nimport time\ntime.sleep(300)\n",
        0o755,
    )
    guest_root.write("/usr/local/etc/rc.d/pyd", PYTHON_RC_SCRIPT % sys.executable, 0o755)
    result = guest_root.sh(
        "service pyd onestart; echo rc=$?;"
        "touch /usr/local/etc/pyd.conf;"
        "service pyd onestart; echo rc=$?;"
        "sleep 1; service pyd onestatus; echo rc=$?;"
        "service pyd onestop; echo rc=$?"
    )
    lines = result.stdout.splitlines()
    assert "/usr/local/etc/pyd.conf is not readable." in result.stderr
    assert lines[0] == "rc=1"
    assert lines[1:3] == ["Starting pyd.", "rc=0"]
    assert lines[3].startswith("pyd is running as pid ")
    assert lines[4:6] == ["rc=0", "Stopping pyd."]
    assert lines[-1] == "rc=0"


def test_load_rc_config_reads_rc_conf_local_and_rc_conf_d(guest_root):
    guest_root.write("/etc/rc.conf", 'a="rc.conf"\nb="rc.conf"\nc="rc.conf"\nd="rc.conf"\n')
    guest_root.write("/etc/rc.conf.local", 'b="local"\n')
    guest_root.write("/etc/rc.conf.d/demo", 'c="etc rc.conf.d"\n')
    guest_root.write("/usr/local/etc/rc.conf.d/demo/one", 'd="local dir"\n')
    result = guest_root.sh(
        '. /etc/rc.subr; load_rc_config demo; echo "$a|$b|$c|$d|$_rc_conf_loaded";'
        '. /etc/rc.subr; c=changed; load_rc_config other; echo "$c"'
    )
    assert result.stdout == "rc.conf|local|etc rc.conf.d|local dir|true\nchanged\n", result.stderr


def test_checkyesno_accepts_freebsds_spellings(guest_root):
    result = guest_root.sh(
        ". /etc/rc.subr; for v in YES yes True on 1 NO off 0 maybe; do x=$v;"
        ' if checkyesno x; then echo "$v y"; else echo "$v n"; fi; done'
    )
    assert result.stdout.split("\n")[:9] == [
        "YES y",
        "yes y",
        "True y",
        "on y",
        "1 y",
        "NO n",
        "off n",
        "0 n",
        "maybe n",
    ]
    assert "$x is not set properly - see rc.conf(5)." in result.stderr


def test_network_subr_helpers_on_several_rc_conf_lines(guest_root):
    guest_root.write(
        "/etc/rc.conf",
        'ifconfig_hn0="SYNCDHCP"\n'
        'ifconfig_hn1="NOSYNCDHCP mtu 9000"\n'
        'ifconfig_lagg0="laggproto failover laggport hn0 DHCP"\n'
        'ifconfig_mce0="inet 10.1.0.4/24 vnet jail1 up"\n'
        'ifconfig_DEFAULT="up"\n'
        'ifconfig_vlan0_100="inet 10.2.0.1/24"\n'
        'ifconfig_hn0_ipv6="inet6 accept_rtadv"\n',
    )
    script = (
        ". /etc/rc.subr; . /etc/network.subr; load_rc_config network;"
        "for i in hn0 hn1 lagg0 mce0 lo0 hn7; do"
        "  dhcpif $i && d=dhcp || d=nodhcp; syncdhcpif $i && s=sync || s=async;"
        '  echo "$i $d $s [$(ifconfig_getargs $i)]"; done;'
        'echo "[$(get_if_var vlan0.100 ifconfig_IF)]";'
        # ifconfig_DEFAULT stands in for ifconfig_IF_ipv6 too, as in FreeBSD
        "ipv6if hn0 && echo hn0-v6; ipv6if hn1 && echo hn1-default-v6;"
        "ifconfig_DEFAULT=; ipv6if hn1 || echo hn1-no-v6;"
        "synchronous_dhclient=YES; syncdhcpif hn7 && echo hn7-sync"
    )
    result = guest_root.sh(script)
    assert result.stdout.splitlines() == [
        "hn0 dhcp sync []",
        "hn1 dhcp async [mtu 9000]",
        "lagg0 dhcp async [laggproto failover laggport hn0]",
        "mce0 nodhcp async [inet 10.1.0.4/24 up]",
        # FreeBSD's defaults leave ifconfig_lo0 unset: ifconfig_DEFAULT applies
        "lo0 nodhcp async [up]",
        "hn7 nodhcp async [up]",
        "[inet 10.2.0.1/24]",
        "hn0-v6",
        "hn1-default-v6",
        "hn1-no-v6",
        "hn7-sync",
    ], result.stderr


def test_netif_clones_a_static_lagg_and_runs_syncdhcp(guest_root, kernel_dir):
    guest_root.write(
        "/etc/rc.conf",
        'hostname="g1"\n'
        'cloned_interfaces="lagg0"\n'
        'ifconfig_hn0="up"\n'
        'ifconfig_hn1="SYNCDHCP"\n'
        'ifconfig_lagg0="laggproto failover laggport hn0 laggport mce0 inet 10.0.0.50/24"\n',
    )
    result = guest_root.sh(
        "/etc/rc.d/netif start; echo rc=$?;"
        "service dhclient status hn1; service dhclient start lagg0; echo rc=$?"
    )
    assert "Created clone interfaces: lagg0.\n" in result.stdout, result.stderr
    assert "Starting Network: lo0 hn0 hn1 lagg0.\n" in result.stdout
    # the VF is not there yet: the port fails, the rest of the line still applies
    assert "ifconfig: lagg0 mce0: SIOCSLAGGPORT: Invalid argument" in result.stderr
    assert "\tlaggport: hn0 flags=5<MASTER,ACTIVE>\n" in result.stdout
    assert "dhclient is running as pid " in result.stdout
    assert "'lagg0' is not a DHCP-enabled interface\nrc=1\n" in result.stdout
    state = Kernel(kernel_dir).snapshot()
    assert [a.address for a in state.interface("lagg0").inet] == ["10.0.0.50"]
    assert [a.address for a in state.interface("hn1").inet] == ["10.0.0.4"]


def test_pccard_ether_hands_a_new_interface_to_netif(guest_root, kernel_dir):
    guest_root.write("/etc/rc.conf", 'ifconfig_DEFAULT="inet 10.9.0.1/24"\nifconfig_hn1="NOAUTO"\n')
    result = guest_root.sh(
        "/etc/pccard_ether hn0 start; echo rc=$?; /etc/pccard_ether hn1 start; echo rc=$?"
    )
    assert result.stdout.splitlines()[-1] == "rc=0", result.stderr
    state = Kernel(kernel_dir).snapshot()
    assert [a.address for a in state.interface("hn0").inet] == ["10.9.0.1"]
    assert state.interface("hn1").inet == []
