"""The daemon's state file: its journal of what may be frozen.

The state file is JSON::

    {"version": 1, "pid": 812, "updated": "2026-12-01T22:00:00+0000",
     "frozen": true, "filesystems": ["/var", "/"], "hooks": ["10-db"],
     "running": {"name": "20-app", "action": "freeze", "pid": 901,
                 "deadline": 1796160000.5},
     "last": {"FREEZE": {"ok": true, "message": "...", "time": "..."}}}

It is a journal: a hook is listed in ``hooks`` before its freeze starts and
leaves it only once its thaw has finished; ``running`` names the hook process
under way; ``filesystems`` lists what is about to be suspended before the
first suspension. So after a kill at any step, the next daemon knows every
hook that may be frozen.

Anybody with root can put anything in that file, so it is parsed strictly:
``parse_state`` accepts exactly the types above and raises StateError naming
the first problem otherwise; the daemon then treats the state as unknown.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hvbsd.vss import files

STATE_VERSION = 1
PID_MAX = (1 << 31) - 1  # pid_t is int32 on FreeBSD and Linux
NAME_MAX = 255
TEXT_MAX = 4096
LIST_MAX = 1024


class StateError(ValueError):
    """The state file is missing, unreadable or not what this daemon writes."""


@dataclass(frozen=True)
class Running:
    """A hook process that was under way when the state was written."""

    name: str
    action: str
    pid: Optional[int]
    deadline: float


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str
    time: str


@dataclass(frozen=True)
class State:
    frozen: bool
    pid: Optional[int] = None
    updated: str = "-"
    filesystems: List[str] = field(default_factory=list)
    hooks: List[str] = field(default_factory=list)
    running: Optional[Running] = None
    last: Dict[str, Result] = field(default_factory=dict)


def hook_name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot be a hook's file name in the hook directory, or None."""
    if not name or len(name) > NAME_MAX:
        return "empty or too long"
    if "/" in name or name in (".", "..") or any(ord(c) < 32 or c == "\x7f" for c in name):
        return "not a plain file name"
    return None


def _text(value: Any, where: str, limit: int = TEXT_MAX) -> str:
    if not isinstance(value, str):
        raise StateError(f"{where} is {type(value).__name__}, not a string")
    if len(value) > limit:
        raise StateError(f"{where} is longer than {limit} characters")
    return value


def _pid(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= PID_MAX:
        raise StateError(f"{where} {_short(value)} is not a process id")
    return value


def _strings(value: Any, where: str, names: bool = False) -> List[str]:
    if not isinstance(value, list):
        raise StateError(f"{where} is {type(value).__name__}, not a list")
    if len(value) > LIST_MAX:
        raise StateError(f"{where} has more than {LIST_MAX} entries")
    result = []
    for index, item in enumerate(value):
        text = _text(item, f"{where}[{index}]", NAME_MAX if names else TEXT_MAX)
        if names and hook_name_problem(text):
            raise StateError(f"{where}[{index}] {_short(text)} is {hook_name_problem(text)}")
        result.append(text)
    return result


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_state(data: bytes) -> State:
    """Decode a state file; StateError names what is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(raw, dict):
        raise StateError(f"not a JSON object but {type(raw).__name__}")
    version = raw.get("version", STATE_VERSION)
    if version != STATE_VERSION or isinstance(version, bool):
        raise StateError(f"version {_short(version)} is not {STATE_VERSION}")
    frozen = raw.get("frozen")
    if not isinstance(frozen, bool):
        raise StateError(f"frozen {_short(frozen)} is not true or false")
    pid = raw.get("pid")
    state_pid = None if pid is None else _pid(pid, "pid")
    running = None
    if raw.get("running") is not None:
        entry = raw["running"]
        if not isinstance(entry, dict):
            raise StateError("running is not an object")
        name = _text(entry.get("name"), "running.name", NAME_MAX)
        if hook_name_problem(name):
            raise StateError(f"running.name {_short(name)} is {hook_name_problem(name)}")
        action = entry.get("action")
        if action not in ("freeze", "thaw"):
            raise StateError(f"running.action {_short(action)} is not freeze or thaw")
        deadline = entry.get("deadline")
        if (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                or not math.isfinite(deadline) or not 0 <= deadline < 1e12):
            raise StateError(f"running.deadline {_short(deadline)} is not a time")
        hook_pid = entry.get("pid")
        running = Running(name, action, None if hook_pid is None
                          else _pid(hook_pid, "running.pid"), float(deadline))
    last: Dict[str, Result] = {}
    raw_last = raw.get("last", {})
    if not isinstance(raw_last, dict):
        raise StateError("last is not an object")
    if len(raw_last) > LIST_MAX:
        raise StateError(f"last has more than {LIST_MAX} entries")
    for op, result in raw_last.items():
        if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
            raise StateError(f"last.{_short(op)} is not a result")
        last[_text(op, "a key of last", 64)] = Result(
            result["ok"], _text(result.get("message", ""), f"last.{op}.message"),
            _text(result.get("time", "-"), f"last.{op}.time", 64))
    return State(
        frozen=frozen, pid=state_pid,
        updated=_text(raw.get("updated", "-"), "updated", 64),
        filesystems=_strings(raw.get("filesystems", []), "filesystems"),
        hooks=_strings(raw.get("hooks", []), "hooks", names=True),
        running=running, last=last)


def load_state(path: str) -> State:
    """Read and parse the state file at ``path``; StateError says why it cannot be used."""
    try:
        data = files.read_bounded(path, files.STATE_LIMIT)
    except FileNotFoundError:
        raise StateError(f"{path} does not exist") from None
    except OSError as exc:
        raise StateError(f"{path}: {exc.strerror or exc}") from None
    try:
        return parse_state(data)
    except StateError as exc:
        raise StateError(f"{path}: {exc}") from None


def dump_state(state: Dict[str, Any]) -> bytes:
    return json.dumps(state, indent=1, sort_keys=True).encode() + b"\n"
