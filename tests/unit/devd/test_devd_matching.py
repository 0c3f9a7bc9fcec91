"""Which rule devd runs for an event: anchoring, negation, absent variables, priorities."""

from __future__ import annotations

from hvbsd.devd import Event, parse_text


def rule_for(text: str, event: Event, **kwargs):
    return parse_text(text, **kwargs).first_match(event)


def notify_rule(*matches: tuple[str, str], priority: int = 0, action: str = "x") -> str:
    body = "".join(f'\tmatch "{var}" "{regex}";\n' for var, regex in matches)
    return f'notify {priority} {{\n{body}\taction "{action}";\n}};\n'


def test_match_is_anchored_at_both_ends():
    text = notify_rule(("subsystem", "hn[0-9]"))
    assert rule_for(text, Event.notify("IFNET", "hn0", "ATTACH")) is not None
    assert rule_for(text, Event.notify("IFNET", "hn01", "ATTACH")) is None
    assert rule_for(text, Event.notify("IFNET", "xhn0", "ATTACH")) is None


def test_leading_bang_negates_the_match():
    text = notify_rule(("subsystem", "!(usbus|wlan)[0-9]+"))
    assert rule_for(text, Event.notify("IFNET", "hn0", "ATTACH")) is not None
    assert rule_for(text, Event.notify("IFNET", "usbus3", "ATTACH")) is None
    assert rule_for(text, Event.notify("IFNET", "wlan0", "ATTACH")) is None


def test_bang_from_a_set_variable_is_not_negation():
    text = 'options { set not-hn "!hn0"; };\n' + notify_rule(("subsystem", "$not-hn"))
    assert rule_for(text, Event.notify("IFNET", "hn0", "ATTACH")) is None
    assert rule_for(text, Event.notify("IFNET", "!hn0", "ATTACH")) is not None


def test_absent_variable_is_the_empty_string():
    never = notify_rule(("vm_guest", "hv"))
    assert rule_for(never, Event.notify("ETHERNET", "hn0", "IFATTACH")) is None
    maybe = notify_rule(("vm_guest", "(hv)?"))
    assert rule_for(maybe, Event.notify("ETHERNET", "hn0", "IFATTACH")) is not None
    negated = notify_rule(("vm_guest", "!hv"))
    assert rule_for(negated, Event.notify("ETHERNET", "hn0", "IFATTACH")) is not None


def test_all_matches_of_a_block_must_hold():
    text = notify_rule(("system", "DEVFS"), ("type", "CREATE"), ("cdev", "hv_kvp_dev"))
    assert rule_for(text, Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_kvp_dev"))
    assert rule_for(text, Event.notify("DEVFS", "CDEV", "DESTROY", cdev="hv_kvp_dev")) is None
    assert rule_for(text, Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_vss_dev")) is None


def test_case_insensitive_like_devd_14_unless_asked_otherwise():
    text = notify_rule(("system", "ifnet"))
    event = Event.notify("IFNET", "hn0", "ATTACH")
    assert rule_for(text, event) is not None
    assert rule_for(text, event, icase=False) is None


def test_highest_priority_wins_regardless_of_file_order():
    text = notify_rule(("system", "IFNET"), priority=5, action="low") + notify_rule(
        ("system", "IFNET"), priority=50, action="high"
    )
    assert rule_for(text, Event.notify("IFNET", "hn0", "ATTACH")).commands == ("high",)


def test_equal_priorities_keep_load_order():
    config = parse_text(notify_rule(("system", "IFNET"), priority=7, action="first"), "a.conf")
    config.extend(notify_rule(("system", "IFNET"), priority=7, action="second"), "b.conf")
    assert config.first_match(Event.notify("IFNET", "hn0", "ATTACH")).commands == ("first",)
    assert [rule.commands for rule in config.rules_for("notify")] == [("first",), ("second",)]


def test_only_one_rule_per_event_and_a_higher_rule_without_action_silences_the_rest():
    text = (
        notify_rule(("system", "IFNET"), priority=0, action="generic")
        + 'notify 100 {\n\tmatch "system" "IFNET";\n\tmatch "subsystem" "hn0";\n};\n'
    )
    config = parse_text(text)
    hn0 = config.first_match(Event.notify("IFNET", "hn0", "ATTACH"))
    assert hn0.priority == 100 and hn0.actions == ()
    assert config.first_match(Event.notify("IFNET", "hn1", "ATTACH")).commands == ("generic",)


def test_rules_only_see_events_of_their_kind():
    config = parse_text('attach 0 { device-name "hn0"; action "a"; };\n'
                        'detach 0 { device-name "hn0"; action "d"; };\n')
    assert config.first_match(Event.attach("hn0", {"x": "1"}, "vmbus0")).commands == ("a",)
    assert config.first_match(Event.detach("hn0", {"x": "1"}, "vmbus0")).commands == ("d",)
    assert config.first_match(Event.notify("IFNET", "hn0", "ATTACH")) is None


def test_media_type_asks_the_injected_lookup_for_the_subsystem_interface():
    text = ('notify 0 {\n\tmatch "type" "LINK_UP";\n\tmedia-type "ethernet";\n'
            '\taction "dhcp";\n};\n')
    config = parse_text(text)
    event = Event.notify("IFNET", "hn0", "LINK_UP")
    asked = []

    def media(interface):
        asked.append(interface)
        return {"hn0": "Ethernet", "wlan0": "802.11"}.get(interface)

    assert config.first_match(event, media) is not None
    assert asked == ["hn0"]
    assert config.first_match(Event.notify("IFNET", "wlan0", "LINK_UP"), media) is None
    assert config.first_match(Event.notify("IFNET", "lo0", "LINK_UP"), media) is None
    assert config.first_match(event) is None  # no lookup: no interface has media


def test_media_type_prefers_device_name_over_subsystem():
    config = parse_text('attach 0 { media-type "ethernet"; action "a"; };')
    asked = []
    config.first_match(Event.attach("mce0", {}, "pci0"), lambda name: asked.append(name))
    assert asked == ["mce0"]


def test_unknown_media_type_matches_interfaces_without_media():
    config = parse_text('notify 0 { media-type "tokenring"; action "a"; };')
    event = Event.notify("IFNET", "x0", "LINK_UP")
    assert config.first_match(event, lambda _name: None) is not None
    assert config.first_match(event, lambda _name: "ethernet") is None


def test_match_on_a_set_variable_name_sees_its_value():
    text = 'options { set flavour "hyperv"; };\n' + notify_rule(("flavour", "hyperv"))
    assert rule_for(text, Event.notify("A", "B", "C")) is not None
