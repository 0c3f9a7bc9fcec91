"""POSIX ERE as FreeBSD's regcomp reads it and its regexec runs it: same answers, bounded time."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvbsd.devd import PosixRegexError, compile_ere, translate
from hvbsd.devd.posix_regex import (
    MATCH_BUDGET,
    MAX_PROGRAM,
    RegexBudgetExceeded,
    RegexTooLarge,
    accepted_bytes,
)


def matches(pattern: str, value: str, *, icase: bool = False) -> bool:
    return compile_ere(pattern, icase=icase).matches(value)


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
def test_patterns_keep_their_posix_meaning(pattern, accepted, refused):
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


def test_nested_repetition_is_answered_at_once_as_freebsds_state_set_matcher_does():
    # Python's backtracking re takes exponential time here; regexec(3) does not
    assert not matches("^(a+)+$", "a" * 40 + "!")
    assert not matches("^((a*)*|b)*c$", "a" * 5000)
    assert matches("^(a+)+$", "a" * 5000)


def test_thousands_of_nested_parentheses_are_no_recursion_error():
    deep = "(" * 5000 + "hn0" + ")" * 5000
    assert matches(f"^{deep}$", "hn0")
    with pytest.raises(PosixRegexError, match="unmatched"):
        translate("(" * 5000 + "a")


def test_a_pattern_too_large_to_evaluate_is_refused_as_such():
    with pytest.raises(RegexTooLarge) as error:
        compile_ere("((a{255}){255}){255}")
    assert f"more than {MAX_PROGRAM} automaton states" in error.value.reason


def test_a_match_that_would_take_too_long_is_stopped_with_an_error():
    rng = random.Random(7)
    value = "".join(rng.choice("ab") for _ in range(8000))
    with pytest.raises(RegexBudgetExceeded) as error:
        matches("a(a|b){255}c", value)
    assert f"more than {MATCH_BUDGET} steps" in str(error.value)
    # the same pattern still answers short values, and the cache stays usable
    assert matches("a(a|b){255}c", "a" + "b" * 255 + "c")


def test_values_are_bytes_in_the_c_locale_and_end_at_nul():
    assert matches("^..$", "\u00e9")  # one character, two bytes
    assert not matches("^.$", "\u00e9")
    assert not matches("^[a-z]$", "\u212a", icase=True)  # KELVIN SIGN folds only in Unicode
    assert matches("^hn0$", "hn0\0;reboot")  # regexec(3) stops at the NUL


_SAFE_ATOMS = st.sampled_from(["a", "b", "0", ".", "[ab]", "[^a]", "[[:digit:]]", "(a|b)", "()"])
_SAFE_OPS = st.sampled_from(["", "*", "+", "?", "{2}", "{0,2}", "{1,}"])


@st.composite
def _simple_eres(draw):
    pieces = draw(st.lists(st.tuples(_SAFE_ATOMS, _SAFE_OPS), min_size=1, max_size=5))
    body = "".join(atom + op for atom, op in pieces)
    return draw(st.sampled_from([body, f"^{body}", f"{body}$", f"^{body}$"]))


@settings(max_examples=300, deadline=None)
@given(_simple_eres(), st.text(alphabet="ab0\n", max_size=8), st.booleans())
def test_answers_agree_with_a_backtracking_matcher_where_both_apply(pattern, value, icase):
    python = pattern.replace("$", r"\Z").replace("[[:digit:]]", "[0-9]")
    flags = re.DOTALL | (re.IGNORECASE if icase else 0)
    expected = re.search(python, value, flags) is not None
    assert matches(pattern, value, icase=icase) == expected


@pytest.mark.parametrize(
    ("pattern", "accepted"),
    [
        ("^[a-z][a-z0-9]{0,13}[0-9]$", "0123456789abcdefghijklmnopqrstuvwxyz"),
        ("^(hn0|lagg0)$", "0aghln"),
        ("^a*$", "a"),
        ("^$", ""),
        ("^hn0|x$", None),  # each alternative is anchored at one end only
        ("^hn0", None),
        ("hn0$", None),
    ],
)
def test_the_bytes_a_fully_anchored_pattern_lets_through_are_known(pattern, accepted):
    mask = accepted_bytes(compile_ere(pattern, icase=False))
    shown = None if mask is None else "".join(chr(b) for b in range(256) if mask >> b & 1)
    assert shown == accepted


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="()[]{}|*+?^$.\\:,-=a0!]~'`\u00e9", max_size=30),
       st.text(max_size=20), st.booleans())
def test_any_pattern_compiles_or_is_refused_and_any_value_gets_an_answer(pattern, value, icase):
    try:
        compiled = compile_ere(pattern, icase=icase)
    except PosixRegexError as error:
        assert error.reason and error.pattern == pattern
        return
    assert compiled.matches(value) in (True, False)
