"""devd(8) for hvbsd: the one devd.conf parser, event model, rule matching and dispatcher.

Standard library only.  The simulator dispatches events with it, `hvbsd lint`
checks rule files with it, and the tests prove with it which rule runs.
"""

from __future__ import annotations

from hvbsd.devd.config import (
    Action,
    Config,
    DevdError,
    DevdSyntaxError,
    Match,
    MediaType,
    Options,
    Rule,
    load,
    load_tree,
    parse_file,
    parse_text,
    read_config_text,
)
from hvbsd.devd.dispatch import (
    DEVD_PATH,
    Dispatcher,
    DispatchRecord,
    devd_vm_guest,
    run_like_devd,
)
from hvbsd.devd.event import Event
from hvbsd.devd.expand import expand, shell_quote
from hvbsd.devd.posix_regex import (
    MatchUndecided,
    PosixRegex,
    PosixRegexError,
    compile_ere,
    translate,
)

__all__ = [
    "DEVD_PATH",
    "Action",
    "Config",
    "DevdError",
    "DevdSyntaxError",
    "DispatchRecord",
    "Dispatcher",
    "Event",
    "Match",
    "MatchUndecided",
    "MediaType",
    "Options",
    "PosixRegex",
    "PosixRegexError",
    "Rule",
    "compile_ere",
    "devd_vm_guest",
    "expand",
    "load",
    "load_tree",
    "parse_file",
    "parse_text",
    "read_config_text",
    "run_like_devd",
    "shell_quote",
    "translate",
]
