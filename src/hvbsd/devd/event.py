"""Kernel events as devd reads them from /dev/devctl.

One line per event; the first character says what it is (FreeBSD devd.cc
``process_event``):

- ``!system=IFNET subsystem=hn0 type=LINK_UP`` -- notify; ``k=v`` pairs.
- ``+name at k=v ... on bus`` / ``-name ...`` -- attach / detach; the first
  word is ``device-name``, ``k=v`` pairs follow (an optional ``at`` first),
  ``on BUS`` at the end sets ``bus``.
- ``? at k=v ... on bus`` -- nomatch (no driver claimed a device).

Values may be ``"quoted"`` (``\\"`` inside is a quote).  Parsing of the pairs
stops at the first word that is not ``name=value``, as devd's does.  Every
event also gets ``*`` (the whole line), ``_`` (the line without its first
character) and ``timestamp`` (``seconds.microseconds``).

devd reads one event with ``read(fd, buffer, sizeof(buffer) - 1)`` into a
``DEVCTL_MAXBUF`` buffer and handles it as a C string (``event_loop`` and
``process_event`` in devd.cc), so a line is cut at its first NUL byte and
after `MAX_EVENT_BYTES` bytes here too: no event value is longer than that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Optional

EVENT_KINDS = {"!": "notify", "+": "attach", "-": "detach", "?": "nomatch"}
MAX_EVENT_BYTES = 8191  # DEVCTL_MAXBUF - 1


def _as_devd_reads_it(line: str) -> str:
    """`line` cut at its first NUL and to MAX_EVENT_BYTES bytes (UTF-8), as devd sees it."""
    raw = line.encode("utf-8", "surrogateescape")
    nul = raw.find(0)
    if nul >= 0:
        raw = raw[:nul]
    if len(raw) <= MAX_EVENT_BYTES and nul < 0:
        return line
    return raw[:MAX_EVENT_BYTES].decode("utf-8", "surrogateescape")


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "_-")


def _strip_quote_escapes(value: str) -> str:
    # devd's fix_value: drop the backslash of every \" pair
    out = value
    position = out.find('\\"')
    while position >= 0:
        out = out[:position] + out[position + 1 :]
        position = out.find('\\"', position + 1)
    return out


def _parse_pairs(text: str, into: dict[str, str]) -> str:
    """Read ``name=value`` pairs from the start of `text`; return what is left."""
    position = 0
    length = len(text)
    while position < length:
        start = position
        while position < length and _is_name_char(text[position]):
            position += 1
        if position >= length or text[position] != "=":
            return text[start:]
        name = text[start:position]
        position += 1
        if position < length and text[position] == '"':
            position += 1
            value_start = position
            while position < length and text[position] != '"':
                if text[position] == "\\" and position + 1 < length and text[position + 1] == '"':
                    position += 1
                position += 1
            if position >= length:  # unterminated quote: devd stops here
                return text[start:]
            value = text[value_start:position]
            position += 1
        else:
            value_start = position
            while position < length and not text[position].isspace():
                position += 1
            value = text[value_start:position]
        while position < length and text[position].isspace():
            position += 1
        into[name] = _strip_quote_escapes(value)
    return ""


def _format_value(value: str) -> str:
    if value and not any(char.isspace() or char == '"' for char in value):
        return value
    return '"' + value.replace('"', '\\"') + '"'


def _format_pairs(pairs: Mapping[str, str]) -> str:
    for name in pairs:
        if not name or not all(_is_name_char(char) for char in name):
            raise ValueError(
                f"event variable name {name!r} is invalid: use letters, digits, '_' and '-'"
            )
    return " ".join(f"{name}={_format_value(str(value))}" for name, value in pairs.items())


@dataclass(frozen=True)
class Event:
    """One devctl event and the variables devd derives from it."""

    kind: str
    line: str
    variables: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        """The variable's value; "" when the event does not carry it (as in devd)."""
        return self.variables.get(name, "")

    @classmethod
    def parse(cls, line: str, timestamp: Optional[float] = None) -> Event:
        """Parse one devctl line; `timestamp` defaults to now, as devd stamps on arrival."""
        text = _as_devd_reads_it(line).rstrip("\n")
        if not text:
            raise ValueError("devctl event line is empty")
        kind = EVENT_KINDS.get(text[0])
        if kind is None:
            raise ValueError(
                f"devctl event {line!r}: first character {text[0]!r} is not one of "
                "'!' (notify), '+' (attach), '-' (detach), '?' (nomatch)"
            )
        stamp = time.time() if timestamp is None else timestamp
        seconds = int(stamp)
        micros = min(round((stamp - seconds) * 1_000_000), 999_999)
        variables: dict[str, str] = {
            "*": text,
            "_": text[1:],
            "timestamp": f"{seconds}.{micros:06d}",
        }
        body = text[1:]
        if kind == "notify":
            _parse_pairs(body, variables)
        else:
            space = body.find(" ")
            if space < 0:
                raise ValueError(
                    f"devctl {kind} event {line!r} has no space after the device name; "
                    "devd ignores such a line"
                )
            if kind != "nomatch":
                variables["device-name"] = body[:space]
            rest = body[space + 1 :].lstrip()
            if rest.startswith("at "):
                rest = rest[3:]
            rest = _parse_pairs(rest, variables).lstrip()
            if rest.startswith("on "):
                variables["bus"] = rest[3:]
        return cls(kind, text, variables)

    @classmethod
    def notify(
        cls,
        system: str,
        subsystem: str,
        type: str,  # devd's own name for it
        data: Optional[Mapping[str, str]] = None,
        *,
        timestamp: Optional[float] = None,
        **more: str,
    ) -> Event:
        """Build a notify event: ``Event.notify("DEVFS", "CDEV", "CREATE", cdev="hv_kvp_dev")``.

        Names that are not Python identifiers (``device-name``) go in `data`.
        """
        pairs = {"system": system, "subsystem": subsystem, "type": type}
        pairs.update(data or {})
        pairs.update(more)
        return cls.parse("!" + _format_pairs(pairs), timestamp)

    @classmethod
    def attach(
        cls,
        device: str,
        data: Optional[Mapping[str, str]] = None,
        bus: str = "",
        *,
        timestamp: Optional[float] = None,
    ) -> Event:
        """Build an attach event (``+device at k=v ... on bus``)."""
        return cls.parse("+" + _device_line(device, data, bus), timestamp)

    @classmethod
    def detach(
        cls,
        device: str,
        data: Optional[Mapping[str, str]] = None,
        bus: str = "",
        *,
        timestamp: Optional[float] = None,
    ) -> Event:
        """Build a detach event (``-device at k=v ... on bus``)."""
        return cls.parse("-" + _device_line(device, data, bus), timestamp)

    @classmethod
    def nomatch(
        cls,
        data: Optional[Mapping[str, str]] = None,
        bus: str = "",
        *,
        timestamp: Optional[float] = None,
    ) -> Event:
        """Build a nomatch event (``? at k=v ... on bus``)."""
        return cls.parse("?" + _device_line("", data, bus), timestamp)


def _device_line(device: str, data: Optional[Mapping[str, str]], bus: str) -> str:
    if any(char.isspace() for char in device):
        raise ValueError(f"device name {device!r} must not contain white space")
    line = f"{device} at {_format_pairs(data or {})}".rstrip()
    if bus:
        line += f" on {bus}"
    return line
