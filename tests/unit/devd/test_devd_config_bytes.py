"""devd configuration files are read byte for byte, as devd's lexer reads them.

sbin/devd/token.l: only LF ends a line; a backslash-LF inside a string is the
one continuation; a CR outside a string has no rule (flex echoes and skips it),
inside a string it stays.  devd.cc config::parse_one_file opens with
fopen(fn, "r"): no newline translation.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hvbsd.devd import (
    DevdSyntaxError,
    Event,
    load_tree,
    parse_file,
    parse_text,
    read_config_text,
)

CRLF_RULE = b'notify 10 {\r\n\tmatch "system" "IFNET";\r\n\taction "echo a";\r\n};\r\n'


def test_crs_outside_strings_are_skipped_and_noted_with_their_lines():
    config = parse_text(CRLF_RULE.decode(), "win.conf")
    assert config.rules[0].commands == ("echo a",)
    assert config.rules[0].matches[0].regex == "IFNET"
    assert config.stray_crs == [("win.conf", 1), ("win.conf", 2), ("win.conf", 3),
                                ("win.conf", 4)]


def test_a_lone_cr_is_not_a_line_end():
    config = parse_text('notify 0 {\r\tmatch "system" "A";\raction "x";\r};\n# end\n')
    assert [(rule.line, [m.line for m in rule.matches]) for rule in config.rules] == [(1, [1])]


def test_a_cr_inside_a_string_stays_in_the_value():
    config = parse_text('notify 0 { match "system" "IFNET\r"; action "echo a\r\nb"; };')
    rule = config.rules[0]
    assert rule.matches[0].regex == "IFNET\r"
    assert rule.commands == ("echo a\r\nb",)
    assert config.first_match(Event.parse("!system=IFNET")) is None
    assert config.first_match(Event.parse("!system=IFNET\r")) is None  # CR splits the value
    assert config.first_match(Event.parse('!system="IFNET\r"')) is rule


def test_backslash_crlf_is_no_continuation():
    config = parse_text('notify 0 { action "one \\\r\n\t  two"; };')
    assert config.rules[0].commands == ("one \\\r\n\t  two",)


def test_backslash_lf_is_a_continuation_that_eats_the_indentation():
    config = parse_text('notify 0 { action "one \\\n\t  two"; };')
    assert config.rules[0].commands == ("one two",)


def test_a_comment_runs_over_a_cr_to_the_line_feed():
    config = parse_text('# comment\r notify 9 { action "x"; };\nnotify 0 { action "y"; };\n')
    assert [rule.priority for rule in config.rules] == [0]


def test_parse_file_reads_the_bytes_without_newline_translation(tmp_path: Path):
    path = tmp_path / "win.conf"
    path.write_bytes(b'notify 0 { action "a \\\r\n b"; };\r\n')
    assert read_config_text(path) == 'notify 0 { action "a \\\r\n b"; };\r\n'
    config = parse_file(path)
    assert config.rules[0].commands == ("a \\\r\n b",)
    assert config.stray_crs == [(str(path), 2)]


def test_load_tree_reads_each_file_byte_for_byte(tmp_path: Path):
    (tmp_path / "etc/devd").mkdir(parents=True)
    (tmp_path / "etc/devd.conf").write_bytes(b'options {\r\n\tdirectory "/etc/devd";\r\n};\r\n')
    (tmp_path / "etc/devd/x.conf").write_bytes(b'notify 1 { action "v\\\r\n w"; };\r\n')
    config = load_tree(tmp_path)
    assert config.options.directories == ["/etc/devd"]
    assert config.rules[0].commands == ("v\\\r\n w",)
    assert {file for file, _line in config.stray_crs} == {"/etc/devd.conf", "/etc/devd/x.conf"}


TOKENS = ["notify", "10", "{", 'match "system" "IFNET";', 'action "echo $subsystem";',
          "};", "attach", "0", "{", 'device-name "hn[0-9]+";', 'action "a";', "};"]


def _shape(config):
    return [(rule.kind, rule.priority, rule.line,
             [(m.variable, m.regex, m.line) for m in rule.matches],
             [(a.command, a.line) for a in rule.actions]) for rule in config.rules]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([" ", "\n", "\r\n", "\r", "\t\r"]), min_size=len(TOKENS),
                max_size=len(TOKENS)))
def test_a_cr_between_tokens_changes_nothing_and_counts_no_line(separators):
    with_crs = "".join(token + sep for token, sep in zip(TOKENS, separators))
    without = "".join(token + sep.replace("\r", "" if "\n" in sep else " ")
                      for token, sep in zip(TOKENS, separators))
    config = parse_text(with_crs, "x.conf")
    assert _shape(config) == _shape(parse_text(without, "x.conf"))
    assert len(config.stray_crs) == len({line for _f, line in config.stray_crs})
    assert bool(config.stray_crs) == ("\r" in with_crs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_file_loads_or_is_refused_with_a_line(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("cfg") / "fuzz.conf"
    path.write_bytes(raw)
    try:
        config = parse_file(path)
    except DevdSyntaxError as error:
        assert error.line >= 1
    else:
        assert all(line >= 1 for _f, line in config.stray_crs)


def test_a_digit_of_another_script_is_no_priority_number():
    try:
        parse_text("notify \u07c0 { };")
    except DevdSyntaxError as error:
        assert "unexpected character" in error.detail
    else:
        raise AssertionError("accepted a non-ASCII digit as a priority")
