"""network.subr, rc.d/netif, rc.d/dhclient and rc.subr behave as FreeBSD's (issue 14).

Each test runs the guest's own rc files with real /bin/sh in a throwaway guest
root (conftest's ``guest_root``) and checks the kernel state they leave.  The
expected behaviour is FreeBSD's libexec/rc: network.subr (ifconfig_up,
ipv6_down, list_net_interfaces, ipv6_autoconfif, ipv6_accept_rtadv_up,
ifscript_up, ifnet_rename, ifalias_af_common), rc.d/netif (netif_common),
rc.d/dhclient (dhclient_prestart), rc.subr (run_rc_command, _find_processes,
warn, load_rc_config) and defaults/rc.conf.
"""

from __future__ import annotations

import re

from hvbsd.sim.kernel import Kernel

SUBR = ". /etc/rc.subr; . /etc/network.subr; load_rc_config network; "


def interface(kernel_dir, name):
    return Kernel(kernel_dir).snapshot().interface(name)


def test_ifconfig_up_brings_up_an_interface_with_options_only(guest_root, kernel_dir):
    # FreeBSD's ifconfig_up ends with "ifconfig IF up" once arguments applied
    guest_root.write("/etc/rc.conf", 'ifconfig_hn0="mtu 1400"\n')
    assert not interface(kernel_dir, "hn0").is_up
    result = guest_root.sh("/etc/rc.d/netif start hn0; echo rc=$?")
    assert result.stdout.startswith("Starting Network: hn0.\n"), result.stderr
    assert result.stdout.endswith("rc=0\n")
    hn0 = interface(kernel_dir, "hn0")
    assert hn0.is_up and hn0.mtu == 1400
    # without IPv6 configuration its IPv6 stays disabled
    assert "IFDISABLED" in hn0.nd6


def test_slaac_only_interface_comes_up_accepts_advertisements_and_solicits(
    guest_root, kernel_dir
):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn1_ipv6="inet6 accept_rtadv"\n')
    result = guest_root.sh(
        SUBR + "ipv6_autoconfif hn1 && echo auto; ipv6_autoconfif hn0 || echo not-auto;"
        "ifconfig_up hn1; echo rc=$?"
    )
    assert result.stdout.splitlines()[:3] == ["auto", "not-auto", "rc=0"], result.stderr
    hn1 = interface(kernel_dir, "hn1")
    assert hn1.is_up
    assert "ACCEPT_RTADV" in hn1.nd6 and "IFDISABLED" not in hn1.nd6
    # ipv6_accept_rtadv_up ran rtsol on it (rtsol records each solicitation)
    solicited = (kernel_dir / "solicitations").read_text().split()
    assert solicited == ["hn1"]


def test_ipv6_accept_rtadv_down_stops_accepting(guest_root, kernel_dir):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn1_ipv6="inet6 accept_rtadv"\n')
    result = guest_root.sh(SUBR + "ifconfig_up hn1; ipv6_accept_rtadv_down hn1; echo rc=$?")
    assert result.stdout.splitlines()[-1] == "rc=0", result.stderr
    assert "ACCEPT_RTADV" not in interface(kernel_dir, "hn1").nd6


def test_ipv6_down_leaves_an_interface_without_ipv6_configuration_alone(
    guest_root, kernel_dir
):
    result = guest_root.sh(
        "ifconfig hn0 inet6 2001:db8::5 prefixlen 64 alias;"
        "ifconfig hn1 inet6 2001:db8:1::5 prefixlen 64 alias;"
        "printf 'ifconfig_hn1_ipv6=\"inet6 2001:db8:1::5 prefixlen 64\"\\n' > /etc/rc.conf;"
        + SUBR + "ipv6_down hn0; echo hn0=$?; ipv6_down hn1; echo hn1=$?"
    )
    assert result.stdout.splitlines() == ["hn0=0", "hn1=0"], result.stderr
    # FreeBSD's ipv6_down returns at once for an interface that is no ipv6if
    assert "2001:db8::5" in [a.address for a in interface(kernel_dir, "hn0").inet6]
    assert "2001:db8:1::5" not in [a.address for a in interface(kernel_dir, "hn1").inet6]


def test_list_net_interfaces_skips_noauto_and_clones_not_created_yet(guest_root):
    guest_root.write(
        "/etc/rc.conf",
        'cloned_interfaces="lagg0"\nifconfig_hn1="NOAUTO"\nifconfig_hn0="SYNCDHCP"\n',
    )
    result = guest_root.sh(
        SUBR + 'echo "[$(list_net_interfaces)]"; echo "[$(list_net_interfaces dhcp)]";'
        'echo "[$(list_net_interfaces nodhcp)]";'
        'network_interfaces="hn1"; echo "[$(list_net_interfaces)]"'
    )
    assert result.stdout.splitlines() == [
        "[lo0 hn0]",
        "[hn0]",
        "[]",
        # a list names lo0 first even when it is not in it, and the clones
        "[lo0 hn1 lagg0]",
    ], result.stderr


def test_netif_quietstart_says_starting_network_and_shows_the_interface(guest_root):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn0="inet 10.7.0.4/24"\n')
    result = guest_root.sh("/etc/rc.d/netif quietstart hn0; echo rc=$?")
    lines = result.stdout.splitlines()
    # check_startmsgs: under the quiet prefix rc_startmsgs (YES) decides
    assert lines[0] == "Starting Network: hn0.", result.stderr
    assert lines[1].startswith("hn0: flags=")
    assert "\tinet 10.7.0.4 netmask 0xffffff00 broadcast 10.7.0.255\n" in result.stdout
    assert lines[-1] == "rc=0"


def test_netif_stop_skips_an_interface_that_does_not_exist(guest_root):
    result = guest_root.sh("/etc/rc.d/netif stop hn7; echo rc=$?")
    assert result.stdout == "rc=0\n"
    assert "/etc/rc.d/netif: WARNING: hn7 does not exist.  Skipped.\n" in result.stderr


def test_dhclient_is_found_through_ps_and_never_started_twice(guest_root):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn0="DHCP"\n')
    result = guest_root.sh(
        "service dhclient start hn0; echo rc=$?;"
        "service dhclient status hn0; echo rc=$?;"
        "service dhclient start hn0; echo rc=$?;"
        "ps -ax -o command= | grep -c '^dhclient: hn0';"
        "service dhclient stop hn0; echo rc=$?;"
        "service dhclient status hn0; echo rc=$?;"
        "ps -ax -o command= | grep -c '^dhclient: hn0'"
    )
    status = re.search(r"^dhclient is running as pid (\d+)\.$", result.stdout, re.M)
    assert status, result.stdout + result.stderr
    pid = status.group(1)
    assert result.stdout.splitlines() == [
        "Starting dhclient.",
        "rc=0",
        f"dhclient is running as pid {pid}.",
        "rc=0",
        "rc=1",
        "1",
        "Stopping dhclient.",
        f"Waiting for PIDS: {pid}.",
        "rc=0",
        "dhclient is not running.",
        "rc=1",
        "0",
    ]
    # rc.subr echoes "already running? " and "(pid=N).": two spaces
    assert result.stderr.endswith(f"\ndhclient already running?  (pid={pid}).\n")


def test_dhclient_creates_its_pid_directory_with_group_wheel(guest_root):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn0="DHCP"\n')
    result = guest_root.sh(
        "rm -rf /var/run/dhclient; install -d -o root -g wheel -m 700 /tmp/w; echo rc=$?;"
        "service dhclient start hn0; echo rc=$?; ls -d /var/run/dhclient;"
        "service dhclient stop hn0 >/dev/null"
    )
    assert result.stdout.splitlines() == [
        "rc=0",
        "Starting dhclient.",
        "rc=0",
        "/var/run/dhclient",
    ], result.stderr


def test_warn_goes_to_stderr_and_to_syslog(guest_root):
    result = guest_root.sh(". /etc/rc.subr; warn 'odd value'; cat /var/log/messages")
    # $0 of "sh -c" is "sh" in the guest's sh (its wrapper cannot see argv[0])
    assert result.stderr == "sh: WARNING: odd value\n"
    assert result.stdout.rstrip("\n").endswith(" sh: WARNING: odd value")


def test_defaults_are_freebsds(guest_root):
    guest_root.write("/etc/rc.conf", "")
    result = guest_root.sh(
        ". /etc/rc.subr; load_rc_config;"
        'echo "${ifconfig_DEFAULT-unset}|$defaultrouter|${ifconfig_lo0-unset}|'
        '$ipv6_defaultrouter|${rc_debug-unset}|$ipv6_activate_all_interfaces"'
    )
    assert result.stdout == "unset|NO|unset|NO|unset|NO\n", result.stderr


def test_lo0_gets_127_0_0_1_without_ifconfig_lo0(guest_root, kernel_dir):
    guest_root.write("/etc/rc.conf", "")
    result = guest_root.sh("ifconfig lo0 inet 127.0.0.1 delete; " + SUBR + "ifn_start lo0")
    assert result.returncode == 0, result.stderr
    assert [(a.address, a.prefixlen) for a in interface(kernel_dir, "lo0").inet] == [
        ("127.0.0.1", 8)
    ]


def test_aliases_by_number_with_gaps_ranges_and_link(guest_root, kernel_dir):
    guest_root.write(
        "/etc/rc.conf",
        'ifconfig_hn0="inet 10.3.0.4/24"\n'
        'ifconfig_hn0_alias0="inet 10.3.0.10-12/24"\n'
        'ifconfig_hn0_alias2="inet 10.3.0.20/32"\n'
        'ifconfig_hn0_alias10="link 00:15:5d:aa:bb:cc"\n',
    )
    result = guest_root.sh("/etc/rc.d/netif start hn0 >/dev/null; echo rc=$?")
    assert result.stdout == "rc=0\n", result.stderr
    hn0 = interface(kernel_dir, "hn0")
    assert [(a.address, a.prefixlen) for a in hn0.inet] == [
        ("10.3.0.4", 24),
        ("10.3.0.10", 24),
        ("10.3.0.11", 32),
        ("10.3.0.12", 32),
        ("10.3.0.20", 32),
    ]
    assert hn0.ether == "00:15:5d:aa:bb:cc"
    # netif stop removes the aliases and the rest; the link address stays
    guest_root.sh("/etc/rc.d/netif stop hn0")
    hn0 = interface(kernel_dir, "hn0")
    assert hn0.inet == [] and not hn0.is_up
    assert hn0.ether == "00:15:5d:aa:bb:cc"


def test_start_if_and_stop_if_scripts_are_sourced(guest_root):
    guest_root.write("/etc/rc.conf", "")
    guest_root.write("/etc/start_if.hn1", 'echo "start_if for $1"\n')
    guest_root.write("/etc/stop_if.hn1", 'echo "stop_if for $1"\n')
    result = guest_root.sh("/etc/rc.d/netif start hn1; /etc/rc.d/netif stop hn1")
    lines = result.stdout.splitlines()
    assert lines[:2] == ["start_if for hn1", "Starting Network: hn1."], result.stderr
    assert "stop_if for hn1" in lines
    # netif_common shows each interface it stopped too
    stopping = lines.index("Stopping Network: hn1.")
    assert lines[stopping + 1].startswith("hn1: flags=")


def test_ifconfig_name_renames_before_configuring(guest_root, kernel_dir):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn1_name="net1"\nifconfig_net1="inet 10.8.0.4/24"\n')
    result = guest_root.sh("/etc/rc.d/netif start >/dev/null; echo rc=$?; ifconfig -l")
    assert result.stdout.splitlines()[0] == "rc=0", result.stderr
    assert "net1" in result.stdout.split() and "hn1" not in result.stdout.split()
    assert [a.address for a in interface(kernel_dir, "net1").inet] == ["10.8.0.4"]


def test_sticky_clones_survive_netif_stop(guest_root):
    guest_root.write(
        "/etc/rc.conf", 'cloned_interfaces="lagg0:sticky lagg1"\n'
    )
    result = guest_root.sh("/etc/rc.d/netif start >/dev/null; /etc/rc.d/netif stop; ifconfig -l")
    assert "Destroyed clone interfaces: lagg1.\n" in result.stdout, result.stderr
    assert "lagg0" in result.stdout.splitlines()[-1].split()


def test_obsolete_ipv6_enable_warns_and_becomes_activate_all(guest_root, kernel_dir):
    guest_root.write("/etc/rc.conf", 'ipv6_enable="YES"\n')
    result = guest_root.sh("/etc/rc.d/netif start hn0 >/dev/null")
    assert (
        "/etc/rc.d/netif: WARNING: $ipv6_enable is obsolete.  "
        "Use $ipv6_activate_all_interfaces instead.\n"
    ) in result.stderr
    nd6 = interface(kernel_dir, "hn0").nd6
    assert "IFDISABLED" not in nd6 and "ACCEPT_RTADV" in nd6


def test_new_sysctls_rc_reads(guest_root):
    result = guest_root.sh("sysctl -n net.inet6.ip6.dad_count security.jail.jailed")
    assert result.stdout == "1\n0\n", result.stderr


SLEEPER = """#!/bin/sh
# PROVIDE: sleeper
. /etc/rc.subr
name="sleeper"
desc="Sleeps"
rcvar="sleeper_enable"
command="/bin/sleep"
command_args="300 &"
set_rcvar sleeper_length 300 "How long to sleep^^in seconds"
load_rc_config $name
: "${sleeper_enable:=NO}"
run_rc_command "$1"
"""


def test_service_enable_disable_delete_go_through_sysrc(guest_root):
    guest_root.write("/etc/rc.conf", 'hostname="g1"\n')
    guest_root.write("/usr/local/etc/rc.d/sleeper", SLEEPER, 0o755)
    result = guest_root.sh(
        "service sleeper enable; echo rc=$?; grep sleeper /etc/rc.conf;"
        "service sleeper disable; echo rc=$?; service sleeper delete; echo rc=$?;"
        "grep -c sleeper /etc/rc.conf"
    )
    assert result.stdout.splitlines() == [
        "sleeper enabled in /etc/rc.conf",
        "rc=0",
        'sleeper_enable="YES"',
        "sleeper disabled in /etc/rc.conf",
        "rc=0",
        "sleeper_enable deleted in /etc/rc.conf",
        "rc=0",
        "0",
    ], result.stderr


def test_rcvar_lists_declared_variables_with_their_descriptions(guest_root):
    guest_root.write("/etc/rc.conf", 'sleeper_enable="YES"\n')
    guest_root.write("/usr/local/etc/rc.d/sleeper", SLEEPER, 0o755)
    result = guest_root.sh("service sleeper rcvar")
    assert result.stdout.splitlines() == [
        "# sleeper : Sleeps",
        "#",
        'sleeper_enable="YES"',
        '#   (default: "")',
        'sleeper_length="300"',
        "# - How long to sleep",
        "#   in seconds",
        '#   (default: "300")',
        "",
    ], result.stderr


def test_syncdhcp_with_options_comes_up_and_gets_its_lease(guest_root, kernel_dir):
    # ifconfig_up applies the options, brings hn0 up, then runs dhclient
    # synchronously (dhclient would bring it up itself too)
    guest_root.write("/etc/rc.conf", 'ifconfig_hn0="SYNCDHCP mtu 9000"\n')
    result = guest_root.sh("/etc/rc.d/netif start hn0 > /dev/null; service dhclient status hn0")
    assert result.stdout.startswith("dhclient is running as pid "), result.stderr
    hn0 = interface(kernel_dir, "hn0")
    assert hn0.is_up and hn0.mtu == 9000
    assert [a.address for a in hn0.inet] == ["10.0.0.4"]


# The functions FreeBSD's libexec/rc/network.subr and rc.subr define that the
# simulator's carry too (netgraph's ng_*, veriexec, service jails and
# boottrace are left out: a simulated guest has none of them).
NETWORK_SUBR_FUNCTIONS = (
    "ifn_start ifn_stop ifn_vnetup ifn_vnetdown ifn_vnet0 ifconfig_up ifconfig_down "
    "get_if_var _ifconfig_getargs ifconfig_getargs autoif dhcpif syncdhcpif wpaif hostapif "
    "vnetif afexists noafif ipv6if ipv6_autoconfif ifexists ipv4_up ipv6_up ipv4_down "
    "ipv6_down ifalias ifalias_expand_addr ifalias_expand_addr_inet "
    "ifalias_af_common_handler ifalias_af_common ipv6_prefix_hostid_addr_common "
    "ipv6_accept_rtadv_up ipv6_accept_rtadv_down ifscript_up ifscript_down wlan_up "
    "wlan_down clone_up clone_down childif_create childif_destroy ifnet_rename "
    "list_net_interfaces get_default_if hexdigit hexprint is_wired_interface "
    "network6_getladdr"
)
RC_SUBR_FUNCTIONS = (
    "dot vdot sdot Exists have rc_log rc_trace list_vars set_rcvar set_rcvar_obsolete "
    "force_depend checkyesno reverse_list stop_boot check_pidfile check_process "
    "_find_processes wait_for_pids get_pidfile_from_conf check_startmsgs startmsg "
    "run_rc_command _run_rc_offcmd _run_rc_precmd _run_rc_postcmd _run_rc_setup "
    "_run_rc_doit _run_rc_notrunning _run_rc_killcmd run_rc_script run_rc_scripts "
    "load_rc_config load_rc_config_var rc_usage err warn info debug load_kld ltr "
    "check_required_before check_required_after check_jail check_kern_features "
    "check_namevarlist DebugOn DebugOff safe_dot"
)


def test_rc_subr_and_network_subr_define_freebsds_functions(guest_root):
    names = f"{NETWORK_SUBR_FUNCTIONS} {RC_SUBR_FUNCTIONS}"
    result = guest_root.sh(
        ". /etc/rc.subr; . /etc/network.subr;"
        f"for f in {names}; do type $f >/dev/null 2>&1 || echo missing $f; done; echo end"
    )
    assert result.stdout == "end\n", result.stderr


def test_list_vars_and_load_rc_config_var(guest_root):
    guest_root.write("/etc/rc.conf", 'ifconfig_hn0_alias1="a"\nifconfig_hn0_alias0="b"\n')
    guest_root.write("/etc/rc.conf.d/demo", 'z="demo\'s"\nleak="no"\n')
    result = guest_root.sh(
        ". /etc/rc.subr; load_rc_config; list_vars 'ifconfig_hn0_alias*' | sort;"
        'load_rc_config_var demo z; echo "z=$z leak=${leak-unset}"'
    )
    # only the variable asked for comes back from demo's rc.conf.d file
    assert result.stdout == (
        "ifconfig_hn0_alias0\nifconfig_hn0_alias1\nz=demo's leak=unset\n"
    ), result.stderr


def test_hostile_interface_names_from_devd_run_no_code(guest_root):
    guest_root.write("/etc/rc.conf", 'ifconfig_DEFAULT="DHCP"\n')
    # /var is the guest root's own layer: nothing of this may reach the host
    hostile = ["x;touch /var/p1", "$(touch /var/p2)", "`touch /var/p3`", "../../../var/p4"]
    script = ""
    for name in hostile:
        quoted = "'" + name.replace("'", "'\\''") + "'"
        script += (
            f"/etc/pccard_ether {quoted} start; echo rc=$?;"
            f"/etc/rc.d/dhclient quietstart {quoted}; echo rc=$?;"
            f"/etc/rc.d/netif quietstart {quoted}; echo rc=$?;"
        )
    result = guest_root.sh(script + "ls /var | grep -c '^p[0-9]'; ls /var/run/dhclient")
    assert result.stdout.splitlines() == ["rc=1"] * 12 + ["0"], result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 12
    assert all("not an interface name: " in line for line in result.stderr.splitlines())


def test_ipv4_addrs_and_ifconfig_aliases_are_aliases_too(guest_root, kernel_dir):
    guest_root.write(
        "/etc/rc.conf",
        'ifconfig_hn1_aliases="inet 10.4.1.1/32 inet6 2001:db8:4::1 prefixlen 64"\n'
        'ipv4_addrs_hn1="10.4.0.5/24 10.4.0.8-9/24"\n'
        'ifconfig_hn1_alias0="10.4.2.1/32"\n',
    )
    result = guest_root.sh(SUBR + "ipv4_up hn1; echo rc=$?")
    assert result.stdout == "rc=0\n"
    # an alias without the inet keyword still works, with a warning
    assert (
        'sh: WARNING: $ifconfig_hn1_alias0 needs leading "inet" keyword for an IPv4'
        " address.\n"
    ) in result.stderr
    hn1 = interface(kernel_dir, "hn1")
    assert [(a.address, a.prefixlen) for a in hn1.inet] == [
        ("10.4.1.1", 32),
        ("10.4.2.1", 32),
        ("10.4.0.5", 24),
        ("10.4.0.8", 24),
        ("10.4.0.9", 32),
    ]
    # inet6 aliases wait for ipv6_up, which needs IPv6 configuration
    assert hn1.inet6 == []


def test_ipv6_alias_ranges_expand_in_hexadecimal(guest_root, kernel_dir):
    guest_root.write(
        "/etc/rc.conf",
        'ifconfig_hn1_ipv6="inet6 2001:db8:5::1 prefixlen 64"\n'
        'ifconfig_hn1_alias0="inet6 2001:db8:6::9-b prefixlen 64"\n'
        'ifconfig_hn1_alias1="inet6 2001:db8:7::fffe-ffff/80"\n',
    )
    result = guest_root.sh("/etc/rc.d/netif start hn1 >/dev/null; echo rc=$?")
    assert result.stdout == "rc=0\n", result.stderr
    addresses = [
        (a.address, a.prefixlen)
        for a in interface(kernel_dir, "hn1").inet6
        if not a.address.startswith("fe80:")
    ]
    assert addresses == [
        ("2001:db8:5::1", 64),
        ("2001:db8:6::9", 64),
        ("2001:db8:6::a", 64),
        ("2001:db8:6::b", 64),
        ("2001:db8:7::fffe", 80),
        ("2001:db8:7::ffff", 80),
    ]
