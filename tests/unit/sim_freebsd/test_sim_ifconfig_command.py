"""ifconfig against FreeBSD 14's output lines, errors and exit codes."""

from __future__ import annotations

from hvbsd.sim.kernel import Kernel


def _lagg_block(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("\tlagg")]


def test_list_names_prints_one_line(run_command):
    result = run_command("ifconfig", "-l")
    assert (result.returncode, result.stdout) == (0, "lo0 hn0 hn1\n")


def test_unknown_interface_is_freebsds_error(run_command):
    result = run_command("ifconfig", "lagg9")
    assert result.returncode == 1
    assert result.stderr == "ifconfig: interface lagg9 does not exist\n"
    result = run_command("ifconfig", "lagg9", "up")
    assert (result.returncode, result.stderr) == (1, "ifconfig: interface lagg9 does not exist\n")


def test_status_lines_of_an_hn_interface(run_command):
    assert run_command("ifconfig", "hn0", "inet", "10.0.0.4/24").returncode == 0
    lines = run_command("ifconfig", "hn0").stdout.splitlines()
    assert lines[0] == (
        "hn0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500"
    )
    assert "\tinet 10.0.0.4 netmask 0xffffff00 broadcast 10.0.0.255" in lines
    assert lines[-3:] == [
        "\tmedia: Ethernet autoselect (10Gbase-T <full-duplex>)",
        "\tstatus: active",
        "\tnd6 options=29<PERFORMNUD,IFDISABLED,AUTO_LINKLOCAL>",
    ]


def test_create_without_unit_prints_the_new_name(run_command):
    first = run_command("ifconfig", "lagg", "create")
    assert (first.returncode, first.stdout) == (0, "lagg0\n")
    named = run_command("ifconfig", "lagg5", "create")
    assert (named.returncode, named.stdout) == (0, "")
    again = run_command("ifconfig", "lagg5", "create")
    assert again.returncode == 1
    assert again.stderr == "ifconfig: SIOCIFCREATE2 (lagg5): File exists\n"
    epair = run_command("ifconfig", "epair", "create")
    assert epair.stdout == "epair0a\n"
    assert "epair0b" in run_command("ifconfig", "-l").stdout.split()


def test_failover_lagg_lines_and_active_port_moving(run_command, kernel_dir):
    kernel = Kernel(kernel_dir)
    kernel.attach_vf("hn0", "mce0")
    assert run_command("ifconfig", "mce0", "up").returncode == 0
    assert run_command("ifconfig", "hn0", "up").returncode == 0
    assert run_command("ifconfig", "lagg0", "create").returncode == 0
    setup = run_command(
        "ifconfig", "lagg0", "laggproto", "failover", "laggport", "hn0", "laggport", "mce0"
    )
    assert setup.returncode == 0, setup.stderr
    assert _lagg_block(run_command("ifconfig", "lagg0").stdout) == [
        "\tlaggproto failover lagghash l2,l3,l4",
        "\tlaggport: hn0 flags=5<MASTER,ACTIVE>",
        "\tlaggport: mce0 flags=0<>",
    ]
    kernel.set_link("hn0", "down")  # what hn does while the VF carries traffic
    assert _lagg_block(run_command("ifconfig", "lagg0").stdout)[1:] == [
        "\tlaggport: hn0 flags=1<MASTER>",
        "\tlaggport: mce0 flags=4<ACTIVE>",
    ]
    kernel.detach_vf("hn0")
    kernel.set_link("hn0", "up")
    assert _lagg_block(run_command("ifconfig", "lagg0").stdout)[1:] == [
        "\tlaggport: hn0 flags=5<MASTER,ACTIVE>",
    ]


def test_laggport_already_a_member_is_ignored_other_failures_warn(run_command):
    run_command("ifconfig", "lagg0", "create")
    assert run_command("ifconfig", "lagg0", "laggport", "hn0").returncode == 0
    again = run_command("ifconfig", "lagg0", "laggport", "hn0", "up")
    assert (again.returncode, again.stderr) == (0, "")
    bad = run_command("ifconfig", "lagg0", "laggport", "mce9", "mtu", "9000")
    assert bad.returncode == 1
    assert bad.stderr == "ifconfig: lagg0 mce9: SIOCSLAGGPORT: Invalid argument\n"
    # the rest of the line was still applied
    assert "mtu 9000" in run_command("ifconfig", "lagg0").stdout.splitlines()[0]


def test_bad_lagg_protocol_and_address_are_rejected(run_command):
    run_command("ifconfig", "lagg0", "create")
    proto = run_command("ifconfig", "lagg0", "laggproto", "fastest")
    assert (proto.returncode, proto.stderr) == (
        1,
        "ifconfig: Invalid aggregation protocol: fastest\n",
    )
    address = run_command("ifconfig", "hn0", "inet", "10.0.0.300/24")
    assert (address.returncode, address.stderr) == (1, "ifconfig: 10.0.0.300/24: bad value\n")


def test_alias_add_and_delete(run_command):
    run_command("ifconfig", "hn0", "inet", "10.0.0.4/24")
    run_command("ifconfig", "hn0", "inet", "10.0.0.9/32", "alias")
    inet = [
        line for line in run_command("ifconfig", "hn0").stdout.splitlines() if "\tinet " in line
    ]
    assert inet == [
        "\tinet 10.0.0.4 netmask 0xffffff00 broadcast 10.0.0.255",
        "\tinet 10.0.0.9 netmask 0xffffffff broadcast 10.0.0.9",
    ]
    assert run_command("ifconfig", "hn0", "inet", "10.0.0.4", "-alias").returncode == 0
    assert run_command("ifconfig", "hn0", "-alias").returncode == 0
    none_left = run_command("ifconfig", "hn0", "-alias")
    assert none_left.returncode == 1
    assert none_left.stderr == "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n"


def test_inet6_flags_and_addresses(run_command):
    assert run_command("ifconfig", "hn0", "up").returncode == 0
    run_command("ifconfig", "hn0", "inet6", "-ifdisabled", "no_dad", "-accept_rtadv")
    run_command("ifconfig", "hn0", "inet6", "2001:db8::4", "prefixlen", "64")
    out = run_command("ifconfig", "hn0").stdout
    assert "\tnd6 options=121<PERFORMNUD,AUTO_LINKLOCAL,NO_DAD>\n" in out
    assert "\tinet6 2001:db8::4 prefixlen 64\n" in out
    link_local = [line for line in out.splitlines() if line.startswith("\tinet6 fe80::")]
    assert len(link_local) == 1 and link_local[0].endswith("%hn0 prefixlen 64 scopeid 0x2")


def test_rename_and_destroy(run_command):
    run_command("ifconfig", "epair", "create")
    renamed = run_command("ifconfig", "epair0a", "name", "hn5")
    assert (renamed.returncode, renamed.stdout) == (0, "hn5\n")
    assert run_command("ifconfig", "hn5", "destroy").returncode == 0
    assert run_command("ifconfig", "-l").stdout == "lo0 hn0 hn1\n"
    physical = run_command("ifconfig", "hn0", "destroy")
    assert (physical.returncode, physical.stderr) == (
        1,
        "ifconfig: SIOCIFDESTROY: Invalid argument\n",
    )


def test_up_and_down_filters(run_command):
    run_command("ifconfig", "hn1", "up")
    assert run_command("ifconfig", "-l", "-u").stdout == "lo0 hn1\n"
    assert run_command("ifconfig", "-l", "-d").stdout == "hn0\n"


def _inet6(run_command, name: str) -> list[str]:
    return [line.split()[1] for line in run_command("ifconfig", name, "inet6").stdout.splitlines()
            if line.startswith("\tinet6 ")]


def test_link_local_comes_only_with_in6_if_up_and_stays_removed(run_command):
    # nd6.c nd6_ioctl: clearing IFDISABLED on an up interface runs in6_if_up
    assert run_command("ifconfig", "hn0", "up").returncode == 0
    assert _inet6(run_command, "hn0") == []
    assert run_command("ifconfig", "hn0", "inet6", "-ifdisabled").returncode == 0
    [link_local] = _inet6(run_command, "hn0")
    assert link_local.startswith("fe80::") and link_local.endswith("%hn0")
    # deleting it is final: no address change, flag write or "up" of an up
    # interface brings it back (if.c ifhwioctl calls if_up on the transition only)
    for args in (["inet6", link_local, "-alias"], ["inet6", "2001:db8::1/64"],
                 ["inet6", "accept_rtadv"], ["up"]):
        assert run_command("ifconfig", "hn0", *args).returncode == 0, args
    assert _inet6(run_command, "hn0") == ["2001:db8::1"]
    # down and up again: in6_if_up configures it once more
    assert run_command("ifconfig", "hn0", "down").returncode == 0
    assert run_command("ifconfig", "hn0", "up").returncode == 0
    assert _inet6(run_command, "hn0") == [link_local, "2001:db8::1"]


def test_an_inet6_address_on_an_ifdisabled_interface_enables_ipv6(run_command):
    # in6.c in6_control SIOCAIFADDR_IN6, aifaddr_out: the flag is cleared
    assert run_command("ifconfig", "hn1", "up").returncode == 0
    assert run_command("ifconfig", "hn1", "inet6", "2001:db8::2/64").returncode == 0
    assert "IFDISABLED" not in run_command("ifconfig", "hn1").stdout
    assert [a.split("%")[0][:6] for a in _inet6(run_command, "hn1")] == ["fe80::", "2001:d"]


def test_a_lagg_port_with_ipv6_on_loses_every_inet6_address(run_command, kernel_dir):
    # if_lagg.c lagg_ioctl SIOCSLAGGPORT: in6ifa_llaonifp -> in6_ifdetach
    Kernel(kernel_dir).attach_vf("hn0", "mce0")
    for args in (["hn0", "up"], ["hn0", "inet6", "-ifdisabled"],
                 ["hn0", "inet6", "2001:db8::1/64"], ["mce0", "up"], ["lagg0", "create"]):
        assert run_command("ifconfig", *args).returncode == 0, args
    assert len(_inet6(run_command, "hn0")) == 2
    assert run_command("ifconfig", "lagg0", "laggport", "hn0").returncode == 0
    assert _inet6(run_command, "hn0") == []
    # a port with IPv6 off (IFDISABLED: in6ifa_llaonifp answers none) is left alone
    assert run_command("ifconfig", "mce0", "inet6", "2001:db8::9/64").returncode == 0
    assert run_command("ifconfig", "mce0", "inet6", "ifdisabled").returncode == 0
    assert run_command("ifconfig", "lagg0", "laggport", "mce0").returncode == 0
    assert "2001:db8::9" in _inet6(run_command, "mce0")
