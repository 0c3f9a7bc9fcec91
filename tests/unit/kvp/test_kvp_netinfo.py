"""The host's view of an adapter's addresses: the stock algorithm against hvbsd's."""

from __future__ import annotations

from pathlib import Path

from kvp_guest import HN0_MAC, HN1_MAC, HN10_MAC, LAGG_IFCONFIG, NETSTAT, TEN_IFCONFIG

from hvbsd.kvp import netinfo
from hvbsd.sim.freebsd import ifconfig
from hvbsd.sim.kernel import Kernel


def _addresses(addresses):
    return [a.address for a in addresses]


def test_stock_lookup_in_lagg_mode_answers_hn0_with_no_ipv4() -> None:
    interfaces = netinfo.parse_ifconfig(LAGG_IFCONFIG)
    name, addresses = netinfo.stock_lookup(interfaces, HN0_MAC.upper())
    assert name == "hn0"
    assert _addresses(addresses) == ["fe80::215:5dff:fe0a:b0c"]
    assert not [a for a in addresses if a.version == 4]


def test_hvbsd_lookup_in_lagg_mode_answers_the_laggs_addresses() -> None:
    interfaces = netinfo.parse_ifconfig(LAGG_IFCONFIG)
    hn, source = netinfo.lookup(interfaces, HN0_MAC.upper())
    assert hn is not None and source is not None
    assert (hn.name, source.name) == ("hn0", "lagg0")
    assert _addresses(source.addresses) == ["10.0.0.4", "fe80::215:5dff:fe0a:b0c",
                                            "2001:db8::4"]


def test_stock_lookup_gives_hn1_the_addresses_of_hn10_too() -> None:
    interfaces = netinfo.parse_ifconfig(TEN_IFCONFIG)
    name, addresses = netinfo.stock_lookup(interfaces, HN1_MAC.upper())
    assert name == "hn1"
    assert _addresses(addresses) == ["10.0.1.5", "10.0.10.5"]


def test_hvbsd_lookup_compares_names_exactly() -> None:
    interfaces = netinfo.parse_ifconfig(TEN_IFCONFIG)
    assert _addresses(netinfo.lookup(interfaces, HN1_MAC)[1].addresses) == ["10.0.1.5"]
    assert _addresses(netinfo.lookup(interfaces, HN10_MAC)[1].addresses) == ["10.0.10.5"]


def test_stock_lookup_matches_a_mac_by_its_prefix_and_hvbsd_does_not() -> None:
    interfaces = netinfo.parse_ifconfig(TEN_IFCONFIG)
    assert netinfo.stock_lookup(interfaces, "00:15:5D")[0] == "hn1"
    assert netinfo.stock_lookup(interfaces, "")[0] == "hn1"
    assert netinfo.lookup(interfaces, "00:15:5D") == (None, None)
    assert netinfo.lookup(interfaces, "") == (None, None)


def test_a_lagg_port_named_like_another_hn_does_not_capture_it() -> None:
    text = TEN_IFCONFIG + (
        "lagg1: flags=8843<UP> metric 0 mtu 1500\n\tether 00:15:5d:0a:0b:a0\n"
        "\tinet 10.9.9.9 netmask 0xffffff00\n\tlaggport: hn10 flags=0<>\n")
    interfaces = netinfo.parse_ifconfig(text)
    assert netinfo.lookup(interfaces, HN1_MAC)[1].name == "hn1"
    assert netinfo.lookup(interfaces, HN10_MAC)[1].name == "lagg1"


def test_the_simulators_ifconfig_shows_the_same_problem_after_a_vf_attach(
        tmp_path: Path) -> None:
    kernel = Kernel.create(tmp_path / "kernel", nics=2)
    hn0 = kernel.snapshot().interface("hn0")
    kernel.attach_vf("hn0", "mce0")
    with kernel.transaction() as state:
        out: list = []
        assert ifconfig.configure(state, "lagg0", ["create"], out) == 0
        assert ifconfig.configure(state, "lagg0", ["laggproto", "failover", "laggport", "mce0",
                                                   "laggport", "hn0", "inet", "10.0.0.4/24",
                                                   "up"], out) == 0
        assert ifconfig.configure(state, "lagg0", ["inet6", "2001:db8::4", "prefixlen",
                                                   "64"], out) == 0
    state = kernel.snapshot()
    text = "".join(ifconfig.format_status(state, i, None) for i in state.interfaces)
    interfaces = netinfo.parse_ifconfig(text)
    mac = hn0.ether.upper()
    assert [i.name for i in interfaces if i.ether == hn0.ether] == ["hn0", "mce0", "lagg0"]
    name, stock = netinfo.stock_lookup(interfaces, mac)
    assert name == "hn0" and not [a for a in stock if a.version == 4]
    hn, source = netinfo.lookup(interfaces, mac)
    assert (hn.name, source.name) == ("hn0", "lagg0")
    # the inet6 address enabled IPv6 on the lagg (in6.c SIOCAIFADDR_IN6 clears
    # IFDISABLED, in6_if_up adds the link-local address): the host sees all three
    [link_local] = [a for a in _addresses(source.addresses) if a.startswith("fe80:")]
    assert _addresses(source.addresses) == ["10.0.0.4", link_local, "2001:db8::4"]


def test_ip_info_formats_addresses_and_subnets_as_the_stock_daemon() -> None:
    interfaces = netinfo.parse_ifconfig(LAGG_IFCONFIG)
    source = netinfo.lookup(interfaces, HN0_MAC)[1]
    info = netinfo.ip_info("X", source.addresses, ["10.0.0.1"], ["10.0.0.2"], True)
    assert info.ip_addr == "10.0.0.4;fe80::215:5dff:fe0a:b0c;2001:db8::4;"
    assert info.sub_net == "255.255.255.0;/64;/64;"
    assert (info.addr_family, info.dhcp_enabled) == (3, 1)


def test_ip_info_never_overflows_its_fields() -> None:
    addresses = [netinfo.Address(6, f"2001:db8::{n:x}", 64) for n in range(500)]
    info = netinfo.ip_info("X", addresses, [f"2001:db8::{n:x}" for n in range(100)],
                           ["10.0.0.2"] * 200)
    assert len(info.ip_addr.encode()) < 2048 and len(info.sub_net.encode()) < 2048
    assert len(info.gate_way.encode()) < 1024 and len(info.dns_addr.encode()) < 2048
    assert info.ip_addr.endswith(";")


def test_netstat_gateways_are_those_of_the_interface_named_exactly() -> None:
    assert netinfo.parse_netstat(NETSTAT, "lagg0") == ["10.0.0.1", "fe80::1"]
    assert netinfo.parse_netstat(NETSTAT, "lagg") == []
    assert netinfo.parse_netstat("default 10.0.0.1 UGS hn10\n", "hn1") == []


def test_hostile_ifconfig_text_is_bounded_and_never_raises() -> None:
    junk = "\n".join(["hn0: flags=8843<UP> metric 0 mtu 1500", "\tether zz:zz",
                      "\tinet 999.1.1.1 netmask 0xfffffffff", "\tinet6 ::g prefixlen 300",
                      "\tlaggport:", "x" * 100000, "\tinet 10.0.0.1 netmask 0x"] * 50)
    interfaces = netinfo.parse_ifconfig(junk + "\n" + "\tinet 10.0.0.9 netmask 0xff000000\n"
                                        * 5000)
    assert len(interfaces) == 50
    assert all(i.ether is None and not i.lagg_ports for i in interfaces)
    assert all(not i.addresses for i in interfaces[:-1])
    assert len(interfaces[-1].addresses) == netinfo.MAX_ADDRESSES
    many = "".join(f"hn{n}: flags=8843<UP> metric 0 mtu 1500\n" for n in range(3000))
    assert len(netinfo.parse_ifconfig(many)) == netinfo.MAX_INTERFACES


def test_resolv_conf_nameservers_are_addresses_only() -> None:
    text = "nameserver 10.0.0.2\nnameserver $(reboot)\nnameserver 2001:db8::53\n"
    assert netinfo.parse_resolv_conf(text) == ["10.0.0.2", "2001:db8::53"]
