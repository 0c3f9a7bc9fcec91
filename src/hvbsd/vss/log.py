"""Logging that can be held back while filesystems are frozen.

A write to a suspended filesystem blocks the writer until the filesystem is
resumed, and this daemon is the one that resumes it. So while anything is
suspended every record is kept in memory and emitted after the thaw, with the
time it was logged. Sinks are small and pluggable: syslog (facility daemon,
tag ``hvbsd_vssd`` unless the sink is given another: hvbsd_kvpd shares
this module), stderr (``-n``), a syslog-style file (simulated guests
keep ``/var/log/messages`` as a plain file), or memory (tests).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import syslog
import time
from typing import List, Optional, Tuple

TAG = "hvbsd_vssd"
#: records kept in memory while frozen; later ones are counted, not kept
HOLD_LIMIT = 1000
#: the longest log line (FreeBSD's syslogd takes lines of up to 8 KiB)
LINE_LIMIT = 4096

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(text: str, limit: int = LINE_LIMIT) -> str:
    """One safe log line: newlines and tabs become spaces, other control
    characters (NUL included) and lone surrogates become ``?``, at most
    ``limit`` characters."""
    text = _UNPRINTABLE.sub("?", text.replace("\r\n", "\n"))
    text = text.replace("\n", " | ").replace("\t", " ")
    if len(text) > limit:
        text = text[:limit - 20] + f" ... ({len(text) - limit + 20} more)"
    return text


DEBUG = syslog.LOG_DEBUG
INFO = syslog.LOG_INFO
NOTICE = syslog.LOG_NOTICE
WARNING = syslog.LOG_WARNING
ERR = syslog.LOG_ERR

LEVEL_NAMES = {DEBUG: "debug", INFO: "info", NOTICE: "notice", WARNING: "warning", ERR: "error"}


class Sink:
    """Where records go; ``emit`` must not raise."""

    def emit(self, priority: int, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class StderrSink(Sink):
    def __init__(self, tag: str = TAG) -> None:
        self.tag = tag

    def emit(self, priority: int, text: str) -> None:
        try:
            sys.stderr.write(f"{self.tag}: {LEVEL_NAMES.get(priority, 'info')}: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class SyslogSink(Sink):
    def __init__(self, tag: str = TAG) -> None:
        syslog.openlog(tag, syslog.LOG_PID, syslog.LOG_DAEMON)

    def emit(self, priority: int, text: str) -> None:
        syslog.syslog(priority, text)

    def close(self) -> None:
        syslog.closelog()


class FileSink(Sink):
    """Appends syslog-style lines; the file is opened per record, never held open."""

    def __init__(self, path: str, tag: str = TAG) -> None:
        self.path = path
        self.tag = tag
        self._host = socket.gethostname().split(".", 1)[0]

    def emit(self, priority: int, text: str) -> None:
        stamp = time.strftime("%b %e %H:%M:%S")
        line = f"{stamp} {self._host} {self.tag}[{os.getpid()}]: {text}\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode(errors="replace"))
            finally:
                os.close(fd)
        except OSError:
            pass


class MemorySink(Sink):
    def __init__(self) -> None:
        self.records: List[Tuple[int, str]] = []

    def emit(self, priority: int, text: str) -> None:
        self.records.append((priority, text))

    def text(self) -> str:
        return "\n".join(text for _, text in self.records)


class Log:
    def __init__(self, sink: Sink, debug: bool = False) -> None:
        self.sink = sink
        self.debug_enabled = debug
        self._held: Optional[List[Tuple[float, int, str]]] = None
        self._dropped = 0

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self) -> None:
        """Keep records in memory from now on."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Emit what was held, marked with the time it was logged."""
        held, self._held = self._held, None
        for when, priority, text in held or ():
            stamp = time.strftime("%H:%M:%S", time.localtime(when))
            self.sink.emit(priority, f"{text} (held while frozen, logged at {stamp})")
        if self._dropped:
            self.sink.emit(WARNING, f"{self._dropped} more messages while frozen were"
                           f" dropped (at most {HOLD_LIMIT} are held)")
            self._dropped = 0

    def log(self, priority: int, text: str) -> None:
        if priority == DEBUG and not self.debug_enabled:
            return
        text = clean(text)
        if self._held is not None:
            if len(self._held) < HOLD_LIMIT:
                self._held.append((time.time(), priority, text))
            else:
                self._dropped += 1
        else:
            self.sink.emit(priority, text)

    def debug(self, text: str) -> None:
        self.log(DEBUG, text)

    def info(self, text: str) -> None:
        self.log(INFO, text)

    def notice(self, text: str) -> None:
        self.log(NOTICE, text)

    def warning(self, text: str) -> None:
        self.log(WARNING, text)

    def error(self, text: str) -> None:
        self.log(ERR, text)
