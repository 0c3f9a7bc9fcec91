"""Run the rule devd would run for an event, the way devd runs it.

For each event devd picks the first matching rule (see `Config.first_match`),
expands each action and runs it with ``/bin/sh -c``, waiting for it to end
before the next action and the next event.  Actions inherit devd's
environment; started from rc that is ``PATH=/sbin:/bin:/usr/sbin:/usr/bin``
and, once devd has daemonized, stdin/stdout/stderr on /dev/null.

devd 14.x quotes values as ``$'...'``, which FreeBSD's sh reads as one word.
Linux's dash (0.5.12) does not know that form and would see ``$`` followed by
a quoted string, so on such a host the action line is run by ``bash --posix``
instead; the scripts an action starts still run with their own ``#!`` line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

from hvbsd.devd.config import Config, MediaLookup, Rule
from hvbsd.devd.event import Event
from hvbsd.devd.expand import QUOTING_MODES, expand

DEVD_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
SHELL = "/bin/sh"

Runner = Callable[[str], int]


_DOLLAR_QUOTE_PROBE = "test $'x' = x"


def _reads_dollar_quotes(argv: tuple[str, ...]) -> bool:
    probe = subprocess.run([*argv, "-c", _DOLLAR_QUOTE_PROBE], env={"PATH": DEVD_PATH},
                           capture_output=True, check=False)
    return probe.returncode == 0


@functools.cache
def devd_shell() -> tuple[str, ...]:
    """The command that runs an action line: /bin/sh if it reads ``$'...'`` as FreeBSD's does.

    Raises RuntimeError when no such shell exists on this host.
    """
    if _reads_dollar_quotes((SHELL,)):
        return (SHELL,)
    bash = shutil.which("bash")
    if bash and _reads_dollar_quotes((bash, "--posix")):
        return (bash, "--posix")
    raise RuntimeError(
        f"{SHELL} does not understand $'...' quoting (FreeBSD's sh does, dash does not) "
        "and no bash was found: install bash to run devd actions as devd 14.x quotes them"
    )


def run_like_devd(command: str, timeout: Optional[float] = None) -> int:
    """Run one expanded action as devd does; return its exit status (-N: killed by signal N).

    devd waits for an action however long it takes (``my_system`` in devd.cc);
    with `timeout` the action's whole process group is killed after that many
    seconds instead, and the status is -SIGKILL.
    """
    process = subprocess.Popen(
        [*devd_shell(), "-c", command],
        env={"PATH": DEVD_PATH},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=timeout is not None,
    )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


@dataclass(frozen=True)
class DispatchRecord:
    """What happened for one event."""

    event: Event
    rule: Optional[Rule]
    commands: tuple[str, ...]  # expanded, in the order they ran
    statuses: tuple[int, ...]  # one per command
    started: float  # time.time() when the event was taken up
    durations: tuple[float, ...]  # seconds per command
    passed_over: tuple[str, ...] = ()  # rules hvbsd could not evaluate (regex budgets)

    @property
    def matched(self) -> bool:
        return self.rule is not None

    def describe(self) -> str:
        """One printable line for logs: the event, the rule that ran, each command's status.

        Event values are hostile: anything unprintable (a newline that would
        forge a log line, an undecodable byte) is shown escaped.
        """
        event = _printable(self.event.line)
        notes = "".join(f" [{_printable(note)}]" for note in self.passed_over)
        if self.rule is None:
            return f"{event}: no rule{notes}"
        ran = "; ".join(
            f"{_printable(repr(command))} -> {status}"
            for command, status in zip(self.commands, self.statuses)
        )
        where = f"{self.rule.file}:{self.rule.line} ({self.rule.kind} {self.rule.priority})"
        return f"{event}: {_printable(where)}: {ran or 'no action'}{notes}"


def _printable(text: str) -> str:
    if text.isprintable() and text.isascii():
        return text
    return text.encode("ascii", "backslashreplace").decode("ascii").translate(_CONTROLS)


_CONTROLS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


class Dispatcher:
    """devd's event loop without the kernel: one event at a time, first matching rule only.

    Matching is bounded (see posix_regex): a rule hvbsd cannot evaluate is
    passed over and named in the record.  `action_timeout` bounds each action
    of the default runner (devd itself has none); an injected `run` bounds its
    own.
    """

    def __init__(
        self,
        config: Config,
        run: Optional[Runner] = None,
        quoting: str = "quoted",
        log: Optional[Callable[[DispatchRecord], None]] = None,
        media_type: Optional[MediaLookup] = None,
        action_timeout: Optional[float] = None,
    ) -> None:
        if quoting not in QUOTING_MODES:
            raise ValueError(
                f"quoting {quoting!r} is not one of {', '.join(QUOTING_MODES)} "
                "(raw: older devd inserts values as they are; quoted: devd 14.x quotes them)"
            )
        if run is None:
            devd_shell()  # fail now, not at the first event, if no shell fits
        self.config = config
        self.run = run if run is not None else functools.partial(
            run_like_devd, timeout=action_timeout)
        self.quoting = quoting
        self.log = log
        self.media_type = media_type
        self._one_at_a_time = threading.Lock()

    def expand_actions(self, rule: Rule, event: Event) -> tuple[str, ...]:
        def lookup(name: str) -> str:
            return self.config.variable(event, name)

        return tuple(
            expand(action.command, lookup, quoting=self.quoting) for action in rule.actions
        )

    def dispatch(self, event: Union[Event, str]) -> DispatchRecord:
        """Handle one event (an `Event` or a devctl line) and return what ran."""
        if isinstance(event, str):
            event = Event.parse(event)
        with self._one_at_a_time:
            started = time.time()
            passed_over: list[str] = []
            rule = self.config.first_match(event, self.media_type, passed_over)
            commands = self.expand_actions(rule, event) if rule is not None else ()
            statuses = []
            durations = []
            for command in commands:
                began = time.monotonic()
                statuses.append(self.run(command))
                durations.append(time.monotonic() - began)
            record = DispatchRecord(
                event, rule, commands, tuple(statuses), started, tuple(durations),
                tuple(passed_over),
            )
            if self.log is not None:
                self.log(record)
            return record
