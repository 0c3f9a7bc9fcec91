"""devctl lines and the variables devd derives from them."""

from __future__ import annotations

import pytest

from hvbsd.devd import Event
from hvbsd.devd.event import MAX_EVENT_BYTES


def test_notify_line_gives_its_pairs_and_the_whole_line():
    event = Event.parse("!system=IFNET subsystem=hn0 type=ADDR_ADD address=10.0.0.4\n",
                        timestamp=1700000000.25)
    assert event.kind == "notify"
    assert dict(event.variables) == {
        "*": "!system=IFNET subsystem=hn0 type=ADDR_ADD address=10.0.0.4",
        "_": "system=IFNET subsystem=hn0 type=ADDR_ADD address=10.0.0.4",
        "timestamp": "1700000000.250000",
        "system": "IFNET",
        "subsystem": "hn0",
        "type": "ADDR_ADD",
        "address": "10.0.0.4",
    }


def test_quoted_values_may_hold_spaces_and_escaped_quotes():
    event = Event.parse(r'!system=X subsystem=Y type=Z msg="a b \"c\"" next=1')
    assert event.get("msg") == 'a b "c"'
    assert event.get("next") == "1"


def test_pair_parsing_stops_at_the_first_word_that_is_not_a_pair():
    event = Event.parse("!system=X subsystem=Y junk type=Z")
    assert event.get("subsystem") == "Y"
    assert "type" not in event.variables


def test_unterminated_quote_stops_pair_parsing():
    event = Event.parse('!system=X bad="open type=Z')
    assert event.get("system") == "X"
    assert "bad" not in event.variables and "type" not in event.variables


def test_attach_line_gives_device_name_pairs_and_bus():
    event = Event.parse("+hn0 at classid=f8615163 deviceid=0 on vmbus0")
    assert event.kind == "attach"
    assert event.get("device-name") == "hn0"
    assert event.get("classid") == "f8615163"
    assert event.get("bus") == "vmbus0"


def test_detach_and_nomatch_lines():
    assert Event.parse("-mce0 at slot=2 on pci1").get("device-name") == "mce0"
    nomatch = Event.parse("? at vendor=0x1414 device=0x5353 on pci0")
    assert nomatch.kind == "nomatch"
    assert nomatch.get("vendor") == "0x1414"
    assert nomatch.get("bus") == "pci0"
    assert "device-name" not in nomatch.variables


def test_absent_variable_reads_as_empty():
    assert Event.parse("!system=IFNET subsystem=hn0 type=LINK_UP").get("cdev") == ""


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("system=IFNET", "first character 's'"),
        ("+hn0", "no space after the device name"),
    ],
)
def test_bad_lines_are_refused_with_the_reason(line, complaint):
    with pytest.raises(ValueError, match=complaint):
        Event.parse(line)


def test_builders_produce_lines_devd_would_read_back():
    event = Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_fsvss_dev", timestamp=1.0)
    assert event.line == "!system=DEVFS subsystem=CDEV type=CREATE cdev=hv_fsvss_dev"
    assert Event.parse(event.line, timestamp=1.0) == event
    spaced = Event.notify("X", "Y", "Z", {"device-name": "a b"})
    assert spaced.line == '!system=X subsystem=Y type=Z device-name="a b"'
    assert spaced.get("device-name") == "a b"
    assert Event.attach("hn0", {"unit": "0"}, "vmbus0").line == "+hn0 at unit=0 on vmbus0"
    assert Event.nomatch({"vendor": "1"}, "pci0").line == "? at vendor=1 on pci0"


def test_builders_refuse_names_devd_could_not_read():
    with pytest.raises(ValueError, match="event variable name 'a b' is invalid"):
        Event.notify("X", "Y", "Z", {"a b": "1"})
    with pytest.raises(ValueError, match="device name 'hn 0' must not contain white space"):
        Event.attach("hn 0")


def test_a_nul_ends_the_event_as_devd_reads_a_c_string():
    event = Event.parse("!system=IFNET subsystem=hn0\x00;reboot type=ATTACH")
    assert event.get("subsystem") == "hn0"
    assert "type" not in event.variables
    assert event.line == "!system=IFNET subsystem=hn0"


def test_an_event_is_cut_at_devds_buffer_size():
    event = Event.parse("!system=IFNET subsystem=" + "\u00e9" * 20_000)
    assert len(event.line.encode("utf-8", "surrogateescape")) == MAX_EVENT_BYTES
    assert len(event.get("subsystem").encode("utf-8", "surrogateescape")) < MAX_EVENT_BYTES
