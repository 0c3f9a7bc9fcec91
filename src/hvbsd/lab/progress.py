"""Progress of a lab run per guest and step: a live display, plain lines, or nothing.

Every call ``progress(guest, step)`` ends the guest's previous step and starts
``step``; the tracker keeps the durations for the report whatever is shown.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional, TextIO

MODES = ("auto", "live", "plain", "quiet")
FINAL = {"ready", "passed", "gone", "up", "done"}


class Tracker:
    """Step durations per guest, and what the user sees of them."""

    def __init__(self, mode: str = "auto", stream: Optional[TextIO] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            tty = hasattr(self.stream, "isatty") and self.stream.isatty()
            if not tty:
                mode = "quiet"
            elif os.environ.get("TERM", "") in ("", "dumb"):
                mode = "plain"
            else:
                mode = "live"
        self.mode = mode
        self.began = time.monotonic()
        self.current: dict[str, tuple[str, float]] = {}
        self.steps: dict[str, list[tuple[str, float]]] = {}
        # seconds of every finished step per guest; unlike ``steps`` (which the
        # lab's state takes and clears after each verb) it lives as long as the tracker
        self.totals: dict[str, float] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.drawn = 0
        self.stopping = threading.Event()
        self.ticker: Optional[threading.Thread] = None
        if self.mode == "live":
            self.ticker = threading.Thread(target=self._tick, daemon=True)
            self.ticker.start()

    def __call__(self, guest: str, step: str) -> None:
        now = time.monotonic()
        with self.lock:
            self._close(guest, now)
            if guest not in self.order:
                self.order.append(guest)
            self.current[guest] = (step, now)
            if self.stopping.is_set():
                return
            if self.mode == "plain":
                self.stream.write(f"{now - self.began:7.1f}s  {guest or 'lab'}: {step}\n")
                self.stream.flush()
            elif self.mode == "live":
                self._draw(now)

    def _close(self, guest: str, now: float) -> None:
        running = self.current.pop(guest, None)
        if running is not None and running[0] not in FINAL:
            self.steps.setdefault(guest, []).append((running[0], now - running[1]))
            self.totals[guest] = self.totals.get(guest, 0.0) + now - running[1]

    def finish(self, guest: Optional[str] = None) -> None:
        """End the running step of ``guest`` (or of every guest)."""
        now = time.monotonic()
        with self.lock:
            for name in [guest] if guest is not None else list(self.current):
                step = self.current.get(name)
                self._close(name, now)
                if step is not None:
                    self.current[name] = ("done" if step[0] in FINAL else step[0] + " ✓", now)
            if self.mode == "live" and not self.stopping.is_set():
                self._draw(now)

    def close(self) -> None:
        """Stop the live display (it draws nothing more); idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.ticker is not None:
            self.ticker.join(timeout=2)
        with self.lock:
            if self.mode == "live":
                self._draw(time.monotonic())

    def message(self, text: str) -> None:
        """A line that is shown in every mode but quiet."""
        if self.mode == "quiet":
            return
        with self.lock:
            if self.mode == "live" and self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
                self.drawn = 0
            self.stream.write(text + "\n")
            self.stream.flush()
            if self.mode == "live" and not self.stopping.is_set():
                self._draw(time.monotonic())

    def _tick(self) -> None:
        while not self.stopping.wait(0.5):
            with self.lock:
                self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        lines = []
        for guest in self.order:
            step, since = self.current.get(guest, ("", now))
            idle = step.endswith("✓") or step in FINAL or step == ""
            total = self.totals.get(guest, 0.0) + (0.0 if idle else now - since)
            running = "" if idle else f" ({now - since:4.1f}s)"
            lines.append(f"  {guest or 'lab':<12} {step:<28}{running}  total {total:6.1f}s")
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")
        self.stream.write("".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)
