"""The supervisor half of daemon(8), run under its own process title.

``daemon`` forks the first child, then execs this module with argv[0] set
to FreeBSD's title (``daemon: TITLE[PID] (daemon)``) so that rc.subr's
process matching and ``pgrep daemon`` see what they see on FreeBSD.  The
supervisor forwards SIGTERM to the child, restarts it under ``-r``, copies
its output to syslog (``-S``) or a file (``-o``), and removes the pidfiles
when it exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from typing import Any, Optional

from hvbsd.sim.freebsd._common import forget_titled_exec

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def write_pidfile(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{pid}\n".encode())


def spawn_child(config: dict[str, Any]) -> tuple[int, Optional[int]]:
    """Fork and exec the program; returns its pid and the read end of its output pipe."""
    read_end: Optional[int] = None
    write_end: Optional[int] = None
    if config["syslog"] or config["output_file"]:
        read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            inherited = (config["pidfile_fd"], config["ppidfile_fd"], config.get("ready_fd"))
            for fd in (*inherited, read_end):
                if fd is not None:
                    os.close(fd)
            if write_end is not None:
                os.dup2(write_end, 1)
                if config["output_mask"] & 2:
                    os.dup2(write_end, 2)
                os.close(write_end)
            for number in TERMINATING_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execvp(config["argv"][0], config["argv"])
        except OSError as error:
            os.write(2, f"daemon: {config['argv'][0]}: {error.strerror}\n".encode())
        os._exit(1)
    if write_end is not None:
        os.close(write_end)
    if config["pidfile_fd"] is not None:
        write_pidfile(config["pidfile_fd"], pid)
    return pid, read_end


class Supervisor:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.child: Optional[int] = config["child_pid"]
        self.output: Optional[int] = config["output_fd"]
        self.terminating = False
        self.buffer = b""

    def on_signal(self, number: int, _frame: object) -> None:
        self.terminating = True
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, number)

    def emit(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        self._write([line.decode(errors="replace") for line in lines])

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        if self.config["output_file"]:
            handle = os.open(
                self.config["output_file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
            with os.fdopen(handle, "a", encoding="utf-8") as stream:
                stream.writelines(line + "\n" for line in lines)
        if self.config["syslog"]:
            from hvbsd.sim.freebsd._common import append_syslog, hostname, syslog_line

            host = hostname()
            append_syslog([syslog_line(self.config["tag"], line, host) for line in lines])

    def wait_child(self) -> None:
        while self.child is not None:
            if self.output is not None:
                try:
                    ready, _, _ = select.select([self.output], [], [], 0.2)
                except InterruptedError:
                    ready = []
                if ready:
                    data = os.read(self.output, 65536)
                    if data:
                        self.emit(data)
                    else:
                        os.close(self.output)
                        self.output = None
            try:
                pid, _status = os.waitpid(self.child, os.WNOHANG if self.output else 0)
            except ChildProcessError:
                pid = self.child
            except InterruptedError:
                continue
            if pid == self.child:
                self.child = None
        if self.output is not None:
            while True:
                data = os.read(self.output, 65536)
                if not data:
                    break
                self.emit(data)
            os.close(self.output)
            self.output = None
        if self.buffer:
            self._write([self.buffer.decode(errors="replace")])
            self.buffer = b""

    def run(self) -> int:
        for number in TERMINATING_SIGNALS:
            signal.signal(number, self.on_signal)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        while True:
            self.wait_child()
            if self.terminating or not self.config["restart"]:
                break
            deadline = time.monotonic() + self.config["restart_delay"]
            while not self.terminating and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.terminating:
                break
            self.child, self.output = spawn_child(self.config)
        for path in (self.config["pidfile"], self.config["ppidfile"]):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return 0


def main(argv: list[str]) -> int:
    from hvbsd.sim.freebsd._common import set_process_name

    set_process_name("daemon")
    forget_titled_exec()
    config = json.loads(argv[0])
    if config["ppidfile_fd"] is not None:
        write_pidfile(config["ppidfile_fd"], os.getpid())
    os.close(config.pop("ready_fd"))  # titled, pidfile written: daemon(8) may return
    return Supervisor(config).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
