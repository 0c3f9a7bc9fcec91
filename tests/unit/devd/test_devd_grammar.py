"""devd.conf(5) grammar: every statement, comments, strings, errors with their line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvbsd.devd import DevdError, DevdSyntaxError, Event, load, parse_file, parse_text

FULL = """\
# hash comment
// slash comment
/* block
   comment spanning lines */
options {
\tdirectory "/etc/devd";
\tdirectory "/usr/local/etc/devd";
\tpid-file "/var/run/devd.pid";
\tset nic-regex "(hn|mce)[0-9]+";
};
notify 10 {
\tmatch "system" "IFNET";   # trailing comment
\tmatch "subsystem" "$nic-regex";
\tmedia-type "ethernet";
\taction "echo one";
\taction "echo two";
};
attach 20 { device-name "ed[0-9]+"; class "netif"; subdevice "0x1"; action "a"; };
detach 30 { device-name "ed[0-9]+"; };
nomatch 40 { match "bus" "pci[0-9]+"; action "logger $vendor"; };
"""


def test_every_statement_kind_is_parsed_into_the_model():
    config = parse_text(FULL, "full.conf")
    assert config.options.directories == ["/etc/devd", "/usr/local/etc/devd"]
    assert config.options.pid_file == "/var/run/devd.pid"
    assert config.options.variables == {"nic-regex": "(hn|mce)[0-9]+"}
    assert [(rule.kind, rule.priority, rule.line) for rule in config.rules] == [
        ("notify", 10, 11), ("attach", 20, 18), ("detach", 30, 19), ("nomatch", 40, 20),
    ]
    notify = config.rules[0]
    assert [(m.variable, m.regex, m.line) for m in notify.matches] == [
        ("system", "IFNET", 12), ("subsystem", "$nic-regex", 13),
    ]
    assert notify.matches[1].expanded == "^(hn|mce)[0-9]+$"
    assert [(m.name, m.line) for m in notify.media_types] == [("ethernet", 14)]
    assert notify.commands == ("echo one", "echo two")
    assert [a.line for a in notify.actions] == [15, 16]
    attach = config.rules[1]
    assert [m.variable for m in attach.matches] == ["device-name", "class", "subdevice"]
    assert config.rules[2].actions == ()
    assert config.files == ["full.conf"]
    assert all(rule.file == "full.conf" for rule in config.rules)


def test_comment_markers_inside_strings_are_part_of_the_string():
    config = parse_text('notify 0 { action "echo a#b // c /* d */"; };')
    assert config.rules[0].commands == ("echo a#b // c /* d */",)


def test_line_continuation_in_a_string_drops_newline_and_indentation():
    text = 'notify 0 {\n\taction "logger one \\\n\t\ttwo";\n};\nnotify 1 { wrong; };\n'
    with pytest.raises(DevdSyntaxError) as error:
        parse_text(text, "cont.conf")
    assert error.value.line == 5  # the continued string counted its newline
    config = parse_text(text.split("notify 1")[0])
    assert config.rules[0].commands == ("logger one two",)


def test_other_backslashes_are_kept_literally():
    config = parse_text(r'notify 0 { action "printf \\n\t"; };')
    assert config.rules[0].commands == (r"printf \\n\t",)


def test_empty_file_and_comment_only_file_are_valid():
    assert parse_text("").rules == []
    assert parse_text("# nothing\n/* here */\n").rules == []


def test_empty_block_is_accepted_but_never_becomes_a_rule():
    config = parse_text("notify 100 {\n};\nnotify 0 { action \"x\"; };\n", "e.conf")
    assert [rule.priority for rule in config.rules] == [0]
    assert config.empty_blocks == [("e.conf", 1, "notify")]
    assert config.first_match(Event.notify("A", "B", "C")).priority == 0


def test_keywords_need_whole_words():
    with pytest.raises(DevdSyntaxError, match="unknown statement 'matches'"):
        parse_text('notify 0 { matches "a" "b"; };')


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ('notify 0 {\n\tmatch "a" "b"\n};\n', 3,
         "expected ';' after the match statement, found '}'"),
        ("\n\nfrobnicate 1 { };\n", 3, "unknown statement 'frobnicate'"),
        ('notify 0 {\n\tfoo "x";\n};\n', 2, "unknown statement 'foo' in a notify block"),
        ('notify {\n action "x"; };', 1, "expected a priority number after 'notify'"),
        ('options {\n\tbogus "x";\n};', 2, "unknown option 'bogus'"),
        ("options {\n};", 2, "options block is empty"),
        ('options { set class "x"; };', 1, "set needs a variable name"),
        ('notify 0 {\n\tmatch "a";\n};', 2, "expected a quoted string after match \"a\""),
        ('notify 0 {\n\taction "";\n};', 2, 'empty string ""'),
        ('notify 0 {\n\taction "never closed;\n};\n', 2, "string is never closed"),
        ("/* open\n\ncomment", 1, "comment '/*' is never closed"),
        ('notify 0 { action "x"; }\n', 2, "expected ';' after the closing '}' of notify 0"),
        ('notify 0 {\n\tmatch "a" = "b";\n};', 2, "unexpected character '='"),
        ('notify 0 {\n\n\tmatch "cdev" "hv_(kvp";\n};', 3, "bad regular expression"),
    ],
)
def test_syntax_errors_name_file_line_and_what_is_wrong(text, line, detail):
    with pytest.raises(DevdSyntaxError) as error:
        parse_text(text, "/etc/devd/bad.conf")
    assert error.value.line == line
    assert error.value.filename == "/etc/devd/bad.conf"
    assert detail in error.value.detail
    assert str(error.value).startswith(f"Cannot parse /etc/devd/bad.conf at line {line}: ")


def test_bad_regex_message_tells_what_devd_compiles():
    with pytest.raises(DevdSyntaxError) as error:
        parse_text('notify 0 { match "cdev" "!\\d+"; };', "x.conf")
    assert "'^\\\\d+$'" in error.value.detail
    assert "not a POSIX extended regular expression escape" in error.value.detail


def test_set_variables_are_expanded_at_parse_time_only_from_earlier_sets():
    text = (
        'notify 0 { match "subsystem" "$later"; action "a"; };\n'
        'options { set later "hn0"; };\n'
        'notify 1 { match "subsystem" "$later"; action "b"; };\n'
    )
    config = parse_text(text)
    early, late = config.rules
    assert early.matches[0].expanded == "^$"
    assert early.matches[0].unset_variables == ("later",)
    assert late.matches[0].expanded == "^hn0$"


def test_parse_file_names_the_file_in_errors(tmp_path):
    path = tmp_path / "broken.conf"
    path.write_text("notify 0 {\n", encoding="utf-8")
    with pytest.raises(DevdSyntaxError) as error:
        parse_file(path)
    assert error.value.filename == str(path)
    assert "end of file" in error.value.detail


def _fake_tree(files: dict[str, str], listing: dict[str, list[str]]):
    def read(path):
        return files.get(path)

    def listdir(path):
        if path not in listing:
            raise FileNotFoundError(path)
        return listing[path]

    return read, listdir


def test_load_follows_directories_reading_only_conf_files_in_sorted_order():
    files = {
        "/etc/devd.conf": 'options { directory "/etc/devd"; directory "/missing"; };',
        "/etc/devd/b.conf": 'notify 0 { action "b"; };',
        "/etc/devd/a.conf": 'notify 0 { action "a"; };',
        "/etc/devd/notes.txt": "this is not devd syntax",
        "/etc/devd/c.conf.orig": "neither is this",
    }
    listing = {"/etc/devd": ["notes.txt", "b.conf", "c.conf.orig", "a.conf", "sub.conf"]}
    config = load(*_fake_tree(files, listing))
    assert config.files == ["/etc/devd.conf", "/etc/devd/a.conf", "/etc/devd/b.conf"]
    assert [rule.commands for rule in config.rules] == [("a",), ("b",)]


def test_load_carries_set_variables_into_directory_files():
    files = {
        "/etc/devd.conf": 'options { directory "/etc/devd"; set nic "hn[0-9]+"; };',
        "/etc/devd/x.conf": 'notify 0 { match "subsystem" "$nic"; action "x"; };',
    }
    config = load(*_fake_tree(files, {"/etc/devd": ["x.conf"]}))
    assert config.rules[0].matches[0].expanded == "^hn[0-9]+$"


def test_load_without_main_file_fails_like_devd():
    with pytest.raises(DevdError, match=r"Cannot open config file /etc/devd\.conf"):
        load(*_fake_tree({}, {}))


def test_load_reports_the_directory_file_that_is_broken():
    files = {
        "/etc/devd.conf": 'options { directory "/etc/devd"; };',
        "/etc/devd/x.conf": "notify 0 {\n\taction x;\n};",
    }
    with pytest.raises(DevdSyntaxError) as error:
        load(*_fake_tree(files, {"/etc/devd": ["x.conf"]}))
    assert (error.value.filename, error.value.line) == ("/etc/devd/x.conf", 2)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='notify match action options set "{};#/*\\\n 0123456789(|)[]$ab!',
               max_size=120))
def test_any_text_parses_or_is_refused_with_a_line_never_a_traceback(text):
    try:
        config = parse_text(text, "fuzz.conf")
    except DevdSyntaxError as error:
        assert error.filename == "fuzz.conf" and error.line >= 1
        return
    for rule in config.rules:
        assert rule.file == "fuzz.conf"
