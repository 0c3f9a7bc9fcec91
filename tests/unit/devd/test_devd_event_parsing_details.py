"""The event parser reads a devctl line as FreeBSD's devd.cc does, to the byte.

process_event / set_vars / chop_var / var_list::fix_value in sbin/devd/devd.cc:
built-ins first (so an event's own pair wins, except for `*`), `\\"` un-escaped
in every variable, words split at C white space only, lines devd drops ignored
without an error, at most 8191 bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvbsd.devd import Dispatcher, Event, devd_vm_guest, parse_text
from hvbsd.devd.event import MAX_EVENT_BYTES

# -- \" in every variable -----------------------------------------------------


def test_escaped_quote_loses_its_backslash_in_star_and_underscore():
    event = Event.parse(r'!system=X msg="a \"b\""')
    assert event.get("*") == '!system=X msg="a "b""'
    assert event.get("_") == 'system=X msg="a "b""'
    assert event.get("msg") == 'a "b"'


def test_escaped_quote_loses_its_backslash_in_the_device_name_and_bus():
    event = Event.parse(r'+hn\"0 at unit=0 on vm\"bus0')
    assert event.get("device-name") == 'hn"0'
    assert event.get("bus") == 'vm"bus0'
    assert event.get("*") == '+hn"0 at unit=0 on vm"bus0'


def test_escaped_quote_loses_its_backslash_in_an_unquoted_value_and_nomatch_bus():
    event = Event.parse(r'? at vendor=a\"b on pci\"0')
    assert event.get("vendor") == 'a"b'
    assert event.get("bus") == 'pci"0'


def test_a_backslash_before_anything_but_a_quote_stays():
    event = Event.parse(r"!system=X path=a\b\\c")
    assert event.get("path") == r"a\b\\c"


# -- C white space only -------------------------------------------------------


@pytest.mark.parametrize("char", ["\u00a0", "\x1c", "\x1d", "\x1e", "\x1f", "\u2003", "\x85"])
def test_unicode_and_information_separators_do_not_split_values(char):
    event = Event.parse(f"!system=IFNET subsystem=hn0{char}type=LINK_UP")
    assert event.get("subsystem") == f"hn0{char}type=LINK_UP"
    assert "type" not in event.variables


@pytest.mark.parametrize("char", [" ", "\t", "\v", "\f", "\r"])
def test_c_white_space_splits_values(char):
    event = Event.parse(f"!system=IFNET{char}subsystem=hn0{char}{char}type=LINK_UP")
    assert (event.get("system"), event.get("subsystem"), event.get("type")) == (
        "IFNET", "hn0", "LINK_UP")


def test_an_attach_device_name_ends_at_a_space_only():
    event = Event.parse("+hn0\tx at unit=0 on vmbus0")
    assert event.get("device-name") == "hn0\tx"
    assert event.get("unit") == "0"


def test_white_space_after_the_device_name_and_before_on_is_skipped_as_c_space():
    event = Event.parse("+hn0 \t\vat unit=0 \f on vmbus0")
    assert (event.get("unit"), event.get("bus")) == ("0", "vmbus0")
    no_break = Event.parse("+hn0 \u00a0at unit=0")
    assert "unit" not in no_break.variables  # NBSP is not white space to devd


def test_bytes_lines_are_read_like_strings():
    event = Event.read(b"!system=IFNET subsystem=hn\xff0 type=LINK_UP\n")
    assert event.get("type") == "LINK_UP"
    assert event.get("subsystem").encode("utf-8", "surrogateescape") == b"hn\xff0"


# -- lines devd ignores -------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("+ubt0", "attach line has no space after the device name"),
        ("-ubt0\tat\tx=1", "detach line has no space"),
        ("?at", "nomatch line has no space"),
        ("system=IFNET", "first character 's'"),
        ("*x", "first character '*'"),
        ("\x00!system=X", "empty"),
    ],
)
def test_lines_devd_ignores_are_read_as_ignored_and_match_no_rule(line, reason):
    event = Event.read(line)
    assert event.ignored and reason in event.reason
    config = parse_text('notify 0 { action "x"; };\nattach 0 { action "y"; };\n'
                        'detach 0 { action "z"; };\nnomatch 0 { action "w"; };\n')
    assert config.first_match(event) is None
    with pytest.raises(ValueError, match="devd ignores such a line"):
        Event.parse(line)


def test_dispatch_of_an_ignored_line_runs_nothing_and_says_so():
    ran: list[str] = []
    config = parse_text('notify 0 { action "x"; };\nattach 0 { action "y"; };\n')
    dispatcher = Dispatcher(config, run=lambda command: ran.append(command) or 0)
    for line in ("+ubt0", "", "#junk", "\x00", "+\n"):
        record = dispatcher.dispatch(line)
        assert record.rule is None and record.commands == ()
        assert ": ignored (" in record.describe()
    assert ran == []


# -- built-ins: timestamp and vm_guest, overridden by the event's pairs ------


def test_an_events_own_timestamp_pair_overrides_the_built_in():
    event = Event.parse("!system=X timestamp=42.000000", timestamp=1700000000.0)
    assert event.get("timestamp") == "42.000000"
    assert Event.parse("!system=X", timestamp=1.5).get("timestamp") == "1.500000"


def test_vm_guest_is_set_only_by_a_devd_that_has_it():
    assert "vm_guest" not in Event.parse("!system=ETHERNET type=IFATTACH").variables
    assert Event.parse("!system=ETHERNET type=IFATTACH", vm_guest="hv").get("vm_guest") == "hv"


def test_an_events_own_vm_guest_pair_overrides_the_built_in():
    event = Event.parse("!system=ETHERNET type=IFATTACH vm_guest=none", vm_guest="hv")
    assert event.get("vm_guest") == "none"
    assert Event.notify("ETHERNET", "mce0", "IFATTACH", vm_guest="xen").with_vm_guest(
        "hv").get("vm_guest") == "xen"


def test_star_cannot_be_overridden_but_underscore_and_device_name_can():
    event = Event.parse("+hn0 at _=forged device-name=mce0 *=x on vmbus0")
    assert event.get("*") == "+hn0 at _=forged device-name=mce0 *=x on vmbus0"
    assert event.get("_") == "forged"
    assert event.get("device-name") == "mce0"
    assert "bus" not in event.variables  # the pairs stop at "*=x", so "on" is never reached


def test_on_bus_wins_over_a_bus_pair():
    assert Event.parse("+hn0 at bus=forged on vmbus0").get("bus") == "vmbus0"


IFATTACH_RULES = """
notify 10 { match "system" "ETHERNET"; match "type" "IFATTACH"; match "vm_guest" "hv";
  action "vfattach $subsystem"; };
"""


@pytest.mark.parametrize("release", ["14.4", "14.5", "15.1"])
def test_the_vm_guest_rule_fires_on_a_release_exactly_when_its_devd_sets_vm_guest(release):
    from hvbsd import releases

    if release not in releases.names():
        pytest.skip(f"{release} is not supported any more")
    ran: list[str] = []
    dispatcher = Dispatcher(parse_text(IFATTACH_RULES), run=lambda c: ran.append(c) or 0,
                            vm_guest=devd_vm_guest(release))
    record = dispatcher.dispatch("!system=ETHERNET subsystem=mce0 type=IFATTACH")
    assert record.matched is releases.get(release).devd_vm_guest
    assert ran == (["vfattach $'mce0'"] if record.matched else [])


def test_devd_vm_guest_follows_releases_yml():
    from hvbsd import releases

    for release in releases.supported():
        expected = "hv" if release.devd_vm_guest else None
        assert devd_vm_guest(release.name) == expected
        assert devd_vm_guest(release, "xen") == ("xen" if release.devd_vm_guest else None)
    with pytest.raises(releases.UnknownRelease):
        devd_vm_guest("13.2")


def test_dispatcher_gives_built_events_its_vm_guest_but_their_pair_wins():
    ran: list[str] = []
    dispatcher = Dispatcher(parse_text(IFATTACH_RULES), run=lambda c: ran.append(c) or 0,
                            vm_guest="hv")
    assert dispatcher.dispatch(Event.notify("ETHERNET", "mce0", "IFATTACH")).matched
    assert not dispatcher.dispatch(
        Event.notify("ETHERNET", "mce0", "IFATTACH", vm_guest="none")).matched
    assert not Dispatcher(parse_text(IFATTACH_RULES), run=lambda c: 0).dispatch(
        "!system=ETHERNET subsystem=mce0 type=IFATTACH").matched


def test_a_vm_guest_set_in_options_is_shadowed_by_the_built_in():
    config = parse_text('options { set vm_guest "hv"; };\n' + IFATTACH_RULES)
    line = "!system=ETHERNET subsystem=mce0 type=IFATTACH"
    assert config.first_match(Event.parse(line)) is not None  # no built-in: `set` shows
    assert config.first_match(Event.parse(line, vm_guest="kvm")) is None


# -- bounds -------------------------------------------------------------------


def test_trailing_newlines_are_stripped_before_the_nul_cut_as_devd_does():
    event = Event.read(b"!system=X a=b\n\x00\n")
    assert event.get("*") == "!system=X a=b\n"
    assert event.get("a") == "b"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20_000))
def test_any_bytes_line_is_read_without_error_and_within_devds_buffer(raw):
    event = Event.read(raw, timestamp=0.0, vm_guest="hv")
    assert event.kind in ("notify", "attach", "detach", "nomatch", "ignored")
    limit = MAX_EVENT_BYTES
    assert len(event.line.encode("utf-8", "surrogateescape")) <= limit
    assert "\x00" not in event.line
    for name, value in event.variables.items():
        assert len(name.encode("utf-8", "surrogateescape")) <= limit
        assert len(value.encode("utf-8", "surrogateescape")) <= limit
    assert len(event.variables) <= limit


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('!+-? =\\"at on\t\v\f\r\n\x00\u00a0\x1cab'),
               max_size=200))
def test_any_text_line_dispatches_without_error(line):
    config = parse_text('notify 0 { match "a" "b"; action "x"; };\n'
                        'attach 0 { match "device-name" "a"; action "y"; };\n')
    record = Dispatcher(config, run=lambda c: 0, vm_guest="hv").dispatch(line)
    assert record.event.ignored or record.event.kind in ("notify", "attach", "detach", "nomatch")
    record.describe()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_any_unicode_line_is_read_without_error(line):
    event = Event.read(line, timestamp=0.0)
    assert len(event.line.encode("utf-8", "surrogateescape")) <= MAX_EVENT_BYTES
