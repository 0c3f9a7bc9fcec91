"""Kernel events as devd reads them from /dev/devctl.

One line per event; the first character says what it is (FreeBSD devd.cc
``process_event``):

- ``!system=IFNET subsystem=hn0 type=LINK_UP`` -- notify; ``k=v`` pairs.
- ``+name at k=v ... on bus`` / ``-name ...`` -- attach / detach; the first
  word (up to the first space) is ``device-name``, ``k=v`` pairs follow (an
  optional ``at`` first), ``on BUS`` at the end sets ``bus``.
- ``? at k=v ... on bus`` -- nomatch (no driver claimed a device).

Values may be ``"quoted"``.  Parsing of the pairs stops at the first word
that is not ``name=value``, as devd's ``chop_var`` does.  Words are split at
C white space only (``isspace`` in the C locale: space, TAB, LF, VT, FF, CR);
a no-break space or ``\x1c``-``\x1f`` is part of a value.

Before the pairs devd sets the built-in variables ``*`` (the whole line),
``_`` (the line without its first character), ``timestamp``
(``seconds.microseconds``) and, in the releases whose devd has it,
``vm_guest`` (``sysctl kern.vm_guest``; ``None`` here means "this devd sets
none").  The pairs are stored after them, so an event's own ``timestamp=``,
``vm_guest=`` or ``_=`` pair wins; ``*`` is no pair name and cannot be
overridden.  devd stores every variable through ``var_list::fix_value``,
which drops the backslash of each ``\"``: in ``*``, ``_``, ``device-name``
and ``bus`` as in the pairs.

devd ignores some lines silently: an empty one, one whose first character is
none of ``!+-?``, and an attach/detach/nomatch line with no space in it
(``+ubt0``).  `Event.read` returns such a line as an event of kind
``"ignored"`` that no rule matches; `Event.parse` refuses it (ValueError).

devd reads one event with ``read(fd, buffer, sizeof(buffer) - 1)`` into a
``DEVCTL_MAXBUF`` buffer, strips the trailing newlines and handles it as a C
string (``event_loop`` and ``process_event`` in devd.cc), so a line is cut
to `MAX_EVENT_BYTES` bytes and at its first NUL byte here too: no event value
is longer than that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

EVENT_KINDS = {"!": "notify", "+": "attach", "-": "detach", "?": "nomatch"}
IGNORED = "ignored"  # the kind of a line devd reads and drops
MAX_EVENT_BYTES = 8191  # DEVCTL_MAXBUF - 1
C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale; devd never calls setlocale


def _as_devd_reads_it(line: Union[str, bytes]) -> str:
    """`line` as devd's event_loop hands it on: 8191 bytes, trailing LFs off, cut at NUL."""
    if isinstance(line, str):
        if "\x00" not in line and len(line) <= MAX_EVENT_BYTES // 4 and line.isascii():
            return line.rstrip("\n")  # the common case, without encoding
        try:
            raw = line.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate no byte decodes to: keep its bytes
            raw = line.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(line)
    raw = raw[:MAX_EVENT_BYTES].rstrip(b"\n")
    nul = raw.find(0)
    if nul >= 0:
        raw = raw[:nul]
    return raw.decode("utf-8", "surrogateescape")


def _is_name_char(char: str) -> bool:
    # config::is_id_char: isalpha/isdigit in the C locale, '_' and '-'
    return char.isascii() and (char.isalnum() or char in "_-")


def _fix_value(value: str) -> str:
    # devd.cc var_list::fix_value, applied by set_variable to every variable: drop the
    # backslash of every \" pair
    return value.replace('\\"', '"') if '\\"' in value else value


def _skip_space(text: str, position: int) -> int:
    length = len(text)
    while position < length and text[position] in C_SPACE:
        position += 1
    return position


def _parse_pairs(text: str, into: dict[str, str]) -> str:
    """Read ``name=value`` pairs from the start of `text` (devd.cc ``set_vars``/``chop_var``).

    Returns what is left, from the first word that is not a pair.
    """
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
            while position < length and text[position] not in C_SPACE:
                position += 1
            value = text[value_start:position]
        position = _skip_space(text, position)
        into[name] = _fix_value(value)
    return ""


def _format_value(value: str) -> str:
    if value and not any(char in C_SPACE or char == '"' for char in value):
        return value
    return '"' + value.replace('"', '\\"') + '"'


def _format_pairs(pairs: Mapping[str, str]) -> str:
    for name in pairs:
        if not name or not all(_is_name_char(char) for char in name):
            raise ValueError(
                f"event variable name {name!r} is invalid: use letters, digits, '_' and '-'"
            )
    return " ".join(f"{name}={_format_value(str(value))}" for name, value in pairs.items())


def _stamp(timestamp: Optional[float]) -> str:
    stamp = time.time() if timestamp is None else timestamp
    seconds = int(stamp)
    micros = min(round((stamp - seconds) * 1_000_000), 999_999)
    return f"{seconds}.{micros:06d}"


@dataclass(frozen=True)
class Event:
    """One devctl event and the variables devd derives from it.

    `kind` is "notify", "attach", "detach", "nomatch", or "ignored" for a line
    devd drops (`reason` then says why); no rule matches an ignored event.
    """

    kind: str
    line: str
    variables: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    @property
    def ignored(self) -> bool:
        return self.kind == IGNORED

    def get(self, name: str) -> str:
        """The variable's value; "" when the event does not carry it (as in devd)."""
        return self.variables.get(name, "")

    def with_vm_guest(self, vm_guest: Optional[str]) -> Event:
        """This event as a devd that sets `vm_guest` would hold it (its own pair still wins)."""
        if vm_guest is None or "vm_guest" in self.variables:
            return self
        return Event(self.kind, self.line, {"vm_guest": _fix_value(vm_guest), **self.variables},
                     self.reason)

    @classmethod
    def read(
        cls, line: Union[str, bytes], timestamp: Optional[float] = None, *,
        vm_guest: Optional[str] = None,
    ) -> Event:
        """One devctl line as devd reads it; never raises (a line devd drops is "ignored").

        `timestamp` defaults to now, as devd stamps on arrival; `vm_guest` is
        the value devd's built-in ``vm_guest`` gets (None: this devd sets none).
        """
        text = _as_devd_reads_it(line)
        # process_event: the built-ins first, through set_variable (fix_value)
        variables: dict[str, str] = {
            "*": _fix_value(text),
            "_": _fix_value(text[1:]),
            "timestamp": _stamp(timestamp),
        }
        if vm_guest is not None:
            variables["vm_guest"] = _fix_value(vm_guest)
        kind = EVENT_KINDS.get(text[:1]) if text else None
        if kind is None:
            reason = ("the line is empty" if not text else
                      f"first character {text[0]!r} is not one of '!' (notify), '+' (attach), "
                      "'-' (detach), '?' (nomatch)")
            return cls(IGNORED, text, variables, reason)
        body = text[1:]
        if kind == "notify":
            _parse_pairs(body, variables)
            return cls(kind, text, variables)
        space = body.find(" ")  # strchr(sp, ' '): a space, not any white space
        if space < 0:
            return cls(IGNORED, text, variables,
                       f"{kind} line has no space after the device name")
        if kind != "nomatch":
            variables["device-name"] = _fix_value(body[:space])
        rest = body[_skip_space(body, space + 1):]
        if rest.startswith("at "):
            rest = rest[3:]
        rest = _parse_pairs(rest, variables)
        rest = rest[_skip_space(rest, 0):]
        if rest.startswith("on "):
            variables["bus"] = _fix_value(rest[3:])
        return cls(kind, text, variables)

    @classmethod
    def parse(
        cls, line: Union[str, bytes], timestamp: Optional[float] = None, *,
        vm_guest: Optional[str] = None,
    ) -> Event:
        """Like `read`, but a line devd would ignore raises ValueError with the reason."""
        event = cls.read(line, timestamp, vm_guest=vm_guest)
        if event.ignored:
            shown = repr(line[:80]) + ("..." if len(line) > 80 else "")
            raise ValueError(f"devctl event {shown}: {event.reason}; devd ignores such a line")
        return event

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
    if any(char.isspace() or char in C_SPACE for char in device):
        raise ValueError(f"device name {device!r} must not contain white space")
    line = f"{device} at {_format_pairs(data or {})}".rstrip()
    if bus:
        line += f" on {bus}"
    return line
