"""The lab's live display: each row's total is the guest's real elapsed time."""

from __future__ import annotations

import io
import re

import pytest

from hvbsd.lab import progress
from hvbsd.lab.cli import record_steps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def last_totals(stream: io.StringIO) -> dict[str, str]:
    rows = re.findall(r"\x1b\[2K  (\S+)\s.*?total\s+([\d.]+)s\n", stream.getvalue())
    return dict(rows)


def test_the_total_survives_the_steps_each_verb_hands_to_the_lab_state(clock):
    stream = io.StringIO()
    tracker = progress.Tracker("live", stream)
    try:
        tracker("g1", "create")
        clock.now += 5.0
        tracker("g1", "up")
        record_steps({}, tracker)  # what `lab up` does before `lab provision` starts
        assert tracker.steps == {}
        tracker("g1", "deploy")
        clock.now += 3.0
        tracker.finish()
    finally:
        tracker.close()
    assert last_totals(stream)["g1"] == "8.0"


def test_the_total_counts_the_running_step(clock):
    stream = io.StringIO()
    tracker = progress.Tracker("live", stream)
    try:
        tracker("g1", "create")
        clock.now += 2.0
        tracker("g2", "create")
        clock.now += 1.5
        tracker.message("a line")  # redraws the rows
    finally:
        tracker.stopping.set()
    totals = last_totals(stream)
    assert totals == {"g1": "3.5", "g2": "1.5"}


def test_idle_final_steps_do_not_count(clock):
    stream = io.StringIO()
    tracker = progress.Tracker("live", stream)
    try:
        tracker("g1", "create")
        clock.now += 1.0
        tracker("g1", "ready")
        clock.now += 60.0
        tracker.message("later")
    finally:
        tracker.stopping.set()
    assert last_totals(stream)["g1"] == "1.0"
