"""devd's `$variable` expansion, for match strings (at parse time) and actions (per event).

Follows ``config::expand_string`` / ``expand_one`` in FreeBSD's devd.cc:

- ``$$`` is a literal ``$``.
- ``$(`` starts a shell command substitution that is copied verbatim up to its
  matching ``)``; nothing inside it is expanded.
- ``$`` followed by anything but a letter, ``_``, ``-`` or ``*`` is copied
  with that character: so ``${subsystem}`` reaches sh untouched and sh
  expands it (to an empty string: devd sets no environment variables).
- Otherwise the name runs over letters, digits, ``_`` and ``-``; an unknown
  name expands to the empty string.  ``$subsystem-x`` is the variable
  ``subsystem-x``, not ``$subsystem`` followed by ``-x``.

Actions are expanded in one of two ways (FreeBSD ``sbin/devd/devd.cc``):

- ``raw``: the older ``config::expand_one(src, dst)`` appends
  ``get_variable(...)`` to the command as it is and ``action::do_action``
  hands the line to ``::system()``, so a value can inject shell syntax
  (devd.cc at freebsd/freebsd-src commits 0016700b and b7d67367 reads so);
- ``quoted``: the newer ``config::expand_one(src, dst, is_shell)`` wraps each
  value with ``config::shell_quote`` into one ``$'...'`` word, ``'`` and
  ``\\`` escaped; ``config::expand_string`` passes ``is_shell`` only for
  actions (``prepend == NULL``), never for the regexes of ``match``.
"""

from __future__ import annotations

from typing import Callable, Optional

QUOTING_MODES = ("raw", "quoted")

Lookup = Callable[[str], Optional[str]]


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "_-")


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char in "_-*")


def shell_quote(value: str) -> str:
    """Quote a value the way devd 14.x does: one ``$'...'`` word."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"$'{escaped}'"


def variable_references(template: str) -> list[str]:
    """The names of the `$name` references devd would expand in `template`, in order."""
    names: list[str] = []
    expand(template, lambda name: names.append(name) or "", quoting="raw")
    return names


def brace_references(template: str) -> list[str]:
    """Each ``${...}`` that devd leaves to the shell, as written (``${subsystem}``)."""
    found: list[str] = []

    def note(index: int) -> None:
        if template.startswith("${", index):
            close = template.find("}", index)
            found.append(template[index:] if close < 0 else template[index : close + 1])

    expand(template, lambda _name: "", quoting="raw", passed_through=note)
    return found


def expand(
    template: str,
    lookup: Lookup,
    *,
    quoting: str = "raw",
    passed_through: Optional[Callable[[int], None]] = None,
) -> str:
    """Expand `template` as devd does; `lookup` returns None for an unknown name.

    `passed_through` is told the index of every `$` that devd copies to the
    output with the character after it (``${``, ``$1``, ``$ ``...).
    """
    if quoting not in QUOTING_MODES:
        raise ValueError(f"quoting {quoting!r} is not one of {', '.join(QUOTING_MODES)}")
    out: list[str] = []
    index = 0
    length = len(template)
    while True:
        dollar = template.find("$", index)
        if dollar < 0:
            out.append(template[index:])
            break
        out.append(template[index:dollar])
        index = dollar + 1
        if index >= length:  # a lone trailing '$' stays
            out.append("$")
            break
        char = template[index]
        if char == "$":
            out.append("$")
            index += 1
        elif char == "(":
            depth = 0
            start = index
            while True:
                if template[index] == ")":
                    depth -= 1
                elif template[index] == "(":
                    depth += 1
                index += 1
                if depth <= 0 or index >= length:
                    break
            out.append("$" + template[start:index])
        elif not _is_name_start(char):
            if passed_through is not None:
                passed_through(dollar)
            out.append("$" + char)
            index += 1
        else:
            start = index
            index += 1
            while index < length and _is_name_char(template[index]):
                index += 1
            value = lookup(template[start:index]) or ""
            out.append(shell_quote(value) if quoting == "quoted" else value)
    return "".join(out)
