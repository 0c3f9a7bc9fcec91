"""Run the rule devd would run for an event, the way devd runs it.

For each event devd picks the first matching rule (see `Config.first_match`),
expands each action and runs it with ``/bin/sh -c``, waiting for it to end
before the next action and the next event.  Actions inherit devd's
environment; started from rc that is ``PATH=/sbin:/bin:/usr/sbin:/usr/bin``
and, once devd has daemonized, stdin/stdout/stderr on /dev/null.

Which devd it is matters for one built-in variable: `vm_guest` (``sysctl
kern.vm_guest``, "hv" on Hyper-V), which the devd of some FreeBSD releases sets
for every event and older ones do not (``releases.yml``, field
``devd_vm_guest``).  ``Dispatcher(config, vm_guest="hv")`` is such a devd,
``vm_guest=None`` (the default) one without it; `devd_vm_guest` gives the
value for a release.  An event's own ``vm_guest=`` pair wins, as with every
built-in but ``*`` (devd.cc ``process_event`` sets the built-ins first).

A line devd ignores (empty, an unknown first character, ``+ubt0`` with no
space) runs no rule and is recorded as ignored; `Dispatcher.dispatch` never
raises for what a line holds.

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
from typing import TYPE_CHECKING, Callable, Optional, Union

from hvbsd.devd.config import Config, MediaLookup, Rule
from hvbsd.devd.event import Event
from hvbsd.devd.expand import QUOTING_MODES, expand

if TYPE_CHECKING:
    from hvbsd.releases import Release

DEVD_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
HYPERV_VM_GUEST = "hv"  # what kern.vm_guest reads on Hyper-V (VM_GUEST_HV)
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


def devd_vm_guest(
    release: Union[str, Release], kern_vm_guest: str = HYPERV_VM_GUEST
) -> Optional[str]:
    """The `vm_guest` the devd of `release` sets on a guest whose kern.vm_guest is given.

    None when that release's devd sets no such variable.  `release` is a name
    ("14.5") or an `hvbsd.releases.Release`; an unknown name raises
    `hvbsd.releases.UnknownRelease`.
    """
    from hvbsd import releases

    found = releases.get(release) if isinstance(release, str) else release
    return kern_vm_guest if found.devd_vm_guest else None


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
        if self.event.ignored:
            return f"{event}: ignored ({_printable(self.event.reason)})"
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
    own.  `vm_guest` is the value of devd's built-in ``vm_guest`` variable,
    None for a devd that sets none (see `devd_vm_guest`).
    """

    def __init__(
        self,
        config: Config,
        run: Optional[Runner] = None,
        quoting: str = "quoted",
        log: Optional[Callable[[DispatchRecord], None]] = None,
        media_type: Optional[MediaLookup] = None,
        action_timeout: Optional[float] = None,
        vm_guest: Optional[str] = None,
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
        self.vm_guest = vm_guest
        self._one_at_a_time = threading.Lock()

    def expand_actions(self, rule: Rule, event: Event) -> tuple[str, ...]:
        def lookup(name: str) -> str:
            return self.config.variable(event, name)

        return tuple(
            expand(action.command, lookup, quoting=self.quoting) for action in rule.actions
        )

    def dispatch(self, event: Union[Event, str, bytes]) -> DispatchRecord:
        """Handle one event (an `Event` or a devctl line) and return what ran.

        A line is read as devd reads it (`Event.read`): one devd ignores runs
        nothing and is returned as such, never raised.  An `Event` gets this
        devd's `vm_guest` unless it carries its own.
        """
        if isinstance(event, (str, bytes)):
            event = Event.read(event, vm_guest=self.vm_guest)
        else:
            event = event.with_vm_guest(self.vm_guest)
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
