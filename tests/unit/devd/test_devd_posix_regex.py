"""POSIX ERE as FreeBSD's regcomp reads it, translated for Python's re."""

from __future__ import annotations

import pytest

from hvbsd.devd import PosixRegexError, compile_ere, translate


def matches(pattern: str, value: str, *, icase: bool = False) -> bool:
    return compile_ere(pattern, icase=icase).search(value) is not None


@pytest.mark.parametrize(
    ("pattern", "accepted", "refused"),
    [
        ("^[[:digit:]]+$", ["0", "42"], ["", "4a", "x"]),
        ("^[[:alpha:]_][[:alnum:]_]*$", ["hn0", "_x"], ["0hn", "a-b"]),
        ("^[[:space:]]$", [" ", "\t", "\n"], ["x"]),
        ("^[[:xdigit:]]+$", ["0xcc"[2:], "DeadBeef"], ["xyz"]),
        ("^[[:punct:]]$", ["!", "~", "["], ["a", " "]),
        ("^[^[:digit:]]$", ["a", "\n"], ["5"]),
        ("^[]a]$", ["]", "a"], ["b"]),
        ("^[^]a]$", ["b"], ["]", "a"]),
        ("^[a-]$", ["a", "-"], ["b"]),
        ("^[-a]$", ["a", "-"], ["b"]),
        (r"^[\d]$", ["\\", "d"], ["5"]),
        ("^[[.-.]x]$", ["-", "x"], ["y"]),
        ("^[[=e=]]$", ["e"], ["f"]),
        ("^[a[]$", ["a", "["], ["]"]),
        (r"^a\.b$", ["a.b"], ["axb"]),
        ("^a.b$", ["axb", "a\nb"], ["ab"]),
        (r"^\(x\)$", ["(x)"], ["x"]),
        ("^x{2,3}$", ["xx", "xxx"], ["x", "xxxx"]),
        ("^x{2,}$", ["xx", "xxxxx"], ["x"]),
        ("^x{2}$", ["xx"], ["xxx"]),
        ("^(ab)+$", ["abab"], ["aba"]),
        ("^()a$", ["a"], ["b"]),
        ("^a$", ["a"], ["a\n"]),  # Python's bare $ would accept the newline
        (r"^\<hn", ["hn0"], [" hn0"]),
        ("[[:<:]]hn0[[:>:]]", ["use hn0 now"], ["xhn0", "hn00"]),
        (r"^a\1$", ["a1"], ["aa"]),  # no back-references in an ERE
    ],
)
def test_translation_keeps_posix_meaning(pattern, accepted, refused):
    for value in accepted:
        assert matches(pattern, value), (pattern, value)
    for value in refused:
        assert not matches(pattern, value), (pattern, value)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"\d+", "not a POSIX extended regular expression escape"),
        (r"\w", "not a POSIX extended regular expression escape"),
        (r"\s", "not a POSIX extended regular expression escape"),
        ("(?i)hn0", "'?' has nothing to repeat"),
        ("(?:hn)0", "'?' has nothing to repeat"),
        ("a+?", "follows another one"),
        ("a**", "follows another one"),
        ("a{2}{3}", "follows another one"),
        ("*a", "nothing to repeat"),
        ("^*a", "after '^'"),
        ("a{x}", "'{' must start a repetition count"),
        ("a{,3}", "invalid repetition count"),
        ("a{3,2}", "invalid repetition count {3,2}"),
        ("a{256}", "invalid repetition count"),
        ("a{2", "unmatched '{'"),
        ("a||b", "empty alternative"),
        ("(a|)", "empty alternative"),
        ("|a", "empty alternative"),
        ("(a", "unmatched '('"),
        ("a)", "unmatched ')'"),
        ("[a", "unmatched '['"),
        ("[[:nope:]]", "unknown character class [:nope:]"),
        ("[z-a]", "invalid range z-a"),
        ("[a-c-e]", "'-' out of place"),
        ("a\\", "trailing backslash"),
    ],
)
def test_what_freebsd_refuses_is_refused(pattern, reason):
    with pytest.raises(PosixRegexError) as error:
        translate(pattern)
    assert reason in error.value.reason
    assert error.value.pattern == pattern


def test_case_insensitivity_is_a_parameter():
    assert matches("^IFNET$", "ifnet", icase=True)
    assert not matches("^IFNET$", "ifnet", icase=False)
    assert matches("^[A-Z]+$", "abc", icase=True)


def test_outer_alternation_is_reported_and_keeps_posix_precedence():
    translation = translate("^hn0|hn1$")
    assert translation.top_level_alternation
    assert not translate("^(hn0|hn1)$").top_level_alternation
    # ^hn0 | hn1$ : each alternative carries only one anchor, exactly as regexec sees it
    assert matches("^hn0|hn1$", "hn0junk")
    assert matches("^hn0|hn1$", "junkhn1")
    assert not matches("^(hn0|hn1)$", "hn0junk")


def test_named_collating_elements_are_refused_rather_than_guessed():
    # FreeBSD knows names such as [.space.]; this translator only knows single characters
    with pytest.raises(PosixRegexError, match="unsupported collating element"):
        translate("[[.space.]]")
