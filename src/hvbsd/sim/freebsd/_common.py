"""What the FreeBSD commands share: the kernel handle, err(3)-style messages,
getopt(3) and syslog's names."""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterator, Optional

from hvbsd.sim.kernel import Kernel, KernelError

# syslog.h's facility names (without "mark", which logger alone accepts).
SYSLOG_FACILITIES = frozenset(
    {
        "auth",
        "authpriv",
        "console",
        "cron",
        "daemon",
        "ftp",
        "kern",
        "lpr",
        "mail",
        "news",
        "ntp",
        "security",
        "syslog",
        "user",
        "uucp",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    }
)
# syslog.h's level names (without the old aliases "error", "panic", "warn", "none").
SYSLOG_LEVELS = frozenset({"alert", "crit", "debug", "emerg", "err", "info", "notice", "warning"})


def kernel() -> Kernel:
    return Kernel.from_environment()


def run_reporting_kernel_errors(
    program: str, body: Callable[[list[str]], int], argv: list[str]
) -> int:
    """``body(argv)``; a KernelError from the simulated kernel is ``program: error``, status 1."""
    try:
        return body(argv)
    except KernelError as error:
        sys.stderr.write(f"{program}: {error}\n")
        return 1


def warnx(program: str, message: str) -> None:
    """warnx(3): ``program: message`` on stderr."""
    sys.stderr.write(f"{program}: {message}\n")


def warn(program: str, message: str, errno_value: int) -> None:
    """warn(3): ``program: message: strerror(errno)`` on stderr."""
    sys.stderr.write(f"{program}: {message}: {os.strerror(errno_value)}\n")


class UsageError(Exception):
    """getopt(3) refused an option: ``letter`` is unknown, or lacks its argument."""

    def __init__(self, letter: str, missing_argument: bool) -> None:
        super().__init__(letter)
        self.letter = letter
        self.missing_argument = missing_argument

    def message(self, program: str) -> str:
        if self.missing_argument:
            return f"{program}: option requires an argument -- {self.letter}\n"
        return f"{program}: illegal option -- {self.letter}\n"

    def report(self, program: str, usage: str, status: int, name_missing: bool = True) -> int:
        """FreeBSD's message and then ``usage`` on stderr; returns ``status``.

        ``name_missing=False``: a missing argument shows the usage text alone.
        """
        silent = self.missing_argument and not name_missing
        sys.stderr.write(usage if silent else self.message(program) + usage)
        return status


class GetOpt:
    """getopt(3) over ``argv`` (the words after the program name).

    ``optstring`` as getopt's: option letters, each followed by ``:`` when it takes
    an argument, attached (``-fFILE``) or as the next word (``-f FILE``).  Flags
    cluster (``-abf FILE``).  Iterating yields ``(letter, argument)`` in command-line
    order (argument ``""`` for a flag) and raises ``UsageError`` at the first unknown
    letter or missing argument.  Options end at the first operand, at ``-`` (an
    operand) and after ``--``; then ``operands`` holds the remaining words.

    Quirks some commands here keep: ``double_dash=False`` makes ``--`` an ordinary
    cluster (so ``illegal option -- -``); ``dash_is_operand=False`` makes a lone
    ``-`` an empty option word that is skipped.  ``warn_as=PROGRAM`` is for a
    command whose switch ignores getopt's ``'?'``: instead of raising, the message
    goes to stderr under that name and parsing goes on (after a missing argument
    there is nothing left to parse).
    """

    def __init__(
        self,
        argv: list[str],
        optstring: str,
        double_dash: bool = True,
        dash_is_operand: bool = True,
        warn_as: Optional[str] = None,
    ) -> None:
        self.operands: list[str] = list(argv)
        self._argv = argv
        self._double_dash = double_dash
        self._dash_is_operand = dash_is_operand
        self._warn_as = warn_as
        self._takes_argument: dict[str, bool] = {}
        for index, letter in enumerate(optstring):
            if letter != ":":
                self._takes_argument[letter] = optstring[index + 1 : index + 2] == ":"

    def __iter__(self) -> Iterator[tuple[str, str]]:
        argv = self._argv
        position = 0
        while position < len(argv) and argv[position].startswith("-"):
            word = argv[position]
            if word == "-" and self._dash_is_operand:
                break
            position += 1
            if word == "--" and self._double_dash:
                break
            index = 1
            while index < len(word):
                letter = word[index]
                index += 1
                takes_argument = self._takes_argument.get(letter)
                if takes_argument is None:
                    self._refuse(UsageError(letter, missing_argument=False))
                    continue
                if not takes_argument:
                    yield letter, ""
                    continue
                value = word[index:]
                if not value:
                    if position >= len(argv):
                        self._refuse(UsageError(letter, missing_argument=True))
                        break
                    value = argv[position]
                    position += 1
                yield letter, value
                break
        self.operands = argv[position:]

    def _refuse(self, error: UsageError) -> None:
        if self._warn_as is None:
            raise error
        sys.stderr.write(error.message(self._warn_as))


def strerror(errno_value: int) -> str:
    # FreeBSD's wording where it differs from glibc's.
    return _FREEBSD_STRERROR.get(errno_value, os.strerror(errno_value))


_FREEBSD_STRERROR = {
    6: "Device not configured",
    16: "Device busy",
    49: "Can't assign requested address",
    93: "Protocol not supported",
    99: "Can't assign requested address",
}


def exec_titled(title: str, module: str, payload: str) -> None:
    """Replace this process with ``python -m MODULE PAYLOAD`` shown as TITLE.

    FreeBSD programs retitle themselves (setproctitle); rc.subr and pgrep match on
    that title, so the simulation re-executes under it as argv[0]. Python finds its
    installation (and the guest's pyvenv.cfg) from argv[0] unless told otherwise,
    hence PYTHONEXECUTABLE; the retitled program clears it again at start
    (see ``forget_titled_exec``) so programs it starts are not affected.
    """
    environment = dict(os.environ, PYTHONEXECUTABLE=sys.executable)
    os.execve(sys.executable, [title, "-m", module, payload], environment)


def detach() -> int:
    """daemon(3) for a program that goes on to re-execute itself under a title.

    Forks; the parent waits until the child (or what it execs) closes the pipe end
    returned here, then exits 0. The child returns in a new session.
    """
    ready_read, ready_write = os.pipe()
    if os.fork() != 0:
        os.close(ready_write)
        while os.read(ready_read, 1):
            pass
        os._exit(0)
    os.close(ready_read)
    os.setsid()
    return ready_write


def stdio_to_devnull() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def forget_titled_exec() -> None:
    os.environ.pop("PYTHONEXECUTABLE", None)


def set_process_name(name: str) -> None:
    """What pkill -x and ps's comm see (FreeBSD's p_comm). prctl(PR_SET_NAME)
    first: a guest's /proc is read-only, so /proc/self/comm cannot be written
    there (that left every simulated daemon named python3 for pgrep -x)."""
    import ctypes
    import ctypes.util

    encoded = name.encode("utf-8", "replace")[:15]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(15, ctypes.c_char_p(encoded), 0, 0, 0) == 0:  # PR_SET_NAME
            return
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/comm", "wb") as stream:
            stream.write(encoded)
    except OSError:
        pass


def syslog_path() -> str:
    """The guest's syslog file (its syslogd writes /var/log/messages)."""
    return os.environ.get("HVBSD_SIM_SYSLOG") or "/var/log/messages"


def syslog_line(tag: str, message: str, hostname: str, pid: int | None = None) -> str:
    """One line as FreeBSD's syslogd writes it: ``Mmm dd hh:mm:ss host tag[pid]: msg``."""
    import time

    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    ident = f"{tag}[{pid}]" if pid is not None else tag
    return f"{stamp} {hostname} {ident}: {message}\n"


def append_syslog(lines: list[str]) -> None:
    import fcntl

    path = syslog_path()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.write(handle, "".join(lines).encode("utf-8", "surrogateescape"))
    finally:
        os.close(handle)


def hostname() -> str:
    try:
        return str(kernel().snapshot().sysctl_value("kern.hostname"))
    except Exception:
        return os.uname().nodename
