"""The lab's report: JUnit XML, ``summary.md``, ``summary.html`` and SVG timelines.

Inputs are what a lab run leaves: per guest the steps with their durations,
the JUnit XML file of its check run, and the scenario records the checks'
``hyperv`` fixture wrote (``hvbsd.lab.hyperv``).  Everything is plain files
that need no tool to view: Markdown, one self-contained HTML page, SVG.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# -- check results -----------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    outcome: str  # passed | failed | error | skipped
    seconds: float
    message: str = ""


@dataclass
class GuestReport:
    name: str
    provider: str
    steps: list[tuple[str, float]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    junit: Optional[str] = None  # file name inside the report
    timelines: list[tuple[str, str]] = field(default_factory=list)  # (scenario, svg name)
    error: str = ""  # why the checks did not run or did not finish
    check_output: Optional[str] = None  # file name of the checks' pytest output
    deploy_log: Optional[str] = None  # file name of the deploy's log
    freebsd_version: str = ""  # what the guest's freebsd-version answered

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.outcome in ("failed", "error")]

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.checks) and not self.failed


def _short_name(name: str) -> str:
    return re.sub(r"\[[^\]]*\]$", "", name)


def read_junit(path: Path) -> list[Check]:
    """The test cases of a pytest ``--junitxml`` file."""
    checks = []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        module = (case.get("classname") or "").rsplit(".", 1)[-1]
        name = f"{module}::{_short_name(case.get('name') or '?')}" if module else case.get("name")
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                message = (found.get("message") or found.text or "").strip()
                break
        checks.append(Check(str(name), outcome, float(case.get("time") or 0.0), message))
    return checks


# -- timelines ------------------------------------------------------------------------------------


@dataclass
class Item:
    lane: str
    start: float
    end: Optional[float]  # None: a point in time
    label: str
    state: str = "ok"  # ok | fail | info


@dataclass
class Timeline:
    title: str
    lanes: list[str]
    items: list[Item]


NIC_LANES = ["host", "kernel", "devd", "scripts"]
BACKUP_LANES = ["host", "hv_vss driver", "daemon", "filesystems", "app hooks", "writer"]


def timeline_of(record: dict[str, Any]) -> Timeline:
    """The timeline of one scenario record written by ``hvbsd.lab.hyperv``."""
    title = f"{record.get('target', '?')}: {record.get('scenario', '?')}"
    if record.get("kind") == "backup":
        return Timeline(title, BACKUP_LANES, _backup_items(record))
    return Timeline(title, NIC_LANES, _nic_items(record.get("result") or {}))


def _nic_items(result: dict[str, Any]) -> list[Item]:
    items: list[Item] = []
    events = result.get("events") or []
    steps: dict[str, list[float]] = {}
    for event in events:
        t = float(event.get("t") or 0.0)
        steps.setdefault(str(event.get("step")), []).append(t)
        fields = dict(re.findall(r"(\w+)=(\S+)", str(event.get("event", ""))))
        items.append(Item("kernel", t, None,
                          f"{fields.get('subsystem', '?')} {fields.get('type', '?')}", "info"))
        rule = event.get("rule")
        if rule:
            items.append(Item("devd", t, None, str(rule).rsplit("/", 1)[-1], "ok"))
        else:
            items.append(Item("devd", t, None, "no rule", "info"))
        for command, status, seconds in zip(event.get("commands") or [],
                                            event.get("statuses") or [],
                                            event.get("durations") or []):
            program = str(command).split()[0].rsplit("/", 1)[-1] if command else "?"
            items.append(Item("scripts", t, t + float(seconds), f"{program} → {status}",
                              "ok" if status == 0 else "fail"))
    for step, times in steps.items():
        items.append(Item("host", min(times), max(times), step, "info"))
    for note in result.get("notes") or []:
        items.append(Item("host", 0.0, None, f"note: {note}", "fail"))
    return items


_LOG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\S+): (.*)$")


def _log_lines(record: dict[str, Any]) -> list[tuple[float, str, str]]:
    began = float(record.get("started") or 0.0)
    found = []
    for line in record.get("host_log") or []:
        match = _LOG.match(line)
        if not match:
            continue
        stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
        found.append((stamp + int(match.group(2)) / 1000.0 - began, match.group(3),
                      match.group(4)))
    return found


def _backup_items(record: dict[str, Any]) -> list[Item]:
    items: list[Item] = []
    result = record.get("result") or {}
    queued: dict[str, float] = {}
    acks: dict[str, float] = {}
    for t, source, text in _log_lines(record):
        fields = dict(re.findall(r"(\w+)=(\S+)", text))
        if text.startswith("host op="):
            queued[fields.get("op", "?")] = t
        elif text.startswith("host: "):
            match = re.match(r"host: (\S+) -> (.*)", text)
            if match:
                op, status = match.groups()
                start = queued.get(op, t)
                items.append(Item("host", start, max(t, start + 0.001), f"{op} → {status}",
                                  "ok" if status == "HV_S_OK" else "fail"))
        elif text.startswith("notify "):
            items.append(Item("hv_vss driver", t, None,
                              f"{fields.get('device', '?')} {fields.get('op', '?')}", "info"))
        elif text.startswith("ack "):
            ok = fields.get("ok") == "True"
            device, op = fields.get("device", "?"), fields.get("op", "?")
            lane = "app hooks" if device == "app" else "daemon"
            items.append(Item(lane, t, None, f"{op} {'ok' if ok else 'FAIL'}",
                              "ok" if ok else "fail"))
            if device == "fs":
                acks[op] = t
        elif source.startswith("hvbsd.sim") and not text.startswith(("reply ", "create ")):
            items.append(Item("hv_vss driver", t, None, text[:40], "info"))
    frozen = next((s.get("frozen") for s in result.get("steps", []) if s.get("step") ==
                   "snapshot"), None)
    if "FREEZE" in acks:
        end = acks.get("THAW", max(acks.values()) + 0.5)
        label = "suspended: " + ", ".join(frozen or []) if frozen is not None else "suspended"
        items.append(Item("filesystems", acks["FREEZE"], end, label, "info"))
        writes = result.get("writes") or {}
        if writes.get("blocked_during_snapshot"):
            items.append(Item("writer", acks["FREEZE"], end, "write blocked", "info"))
        if writes.get("flowed_after_thaw"):
            items.append(Item("writer", end, None, "written", "ok"))
        elif writes.get("blocked_during_snapshot") is not None:
            items.append(Item("writer", end, None, "write did not complete", "fail"))
    if not items:
        for step in result.get("steps", []):
            items.append(Item("host", 0.0, None, f"{step.get('step')}: {step.get('status')}",
                              "ok" if step.get("status") in ("HV_S_OK", None) else "fail"))
    return items


COLOURS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#1565c0"}


def render_svg(timeline: Timeline) -> str:
    """A self-contained SVG: one lane per party, time left to right.

    Within a lane, items go into the first row where their label does not
    overlap the previous one, so dense bursts of events stay readable.
    """
    items = [i for i in timeline.items if i.lane in timeline.lanes]
    span = max([i.end if i.end is not None else i.start for i in items] + [0.1])
    row_h, left, width, top, right = 15, 120, 1100, 46, 190
    scale = (width - left - right) / span

    def x(t: float) -> float:
        return left + max(t, 0.0) * scale

    placed: list[tuple[Item, int]] = []
    rows_of: dict[str, list[float]] = {lane: [] for lane in timeline.lanes}
    for item in sorted(items, key=lambda i: (i.start, i.lane)):
        begin = x(item.start)
        bar = (item.end - item.start) * scale if item.end is not None else 0.0
        finish = begin + max(bar, 10 + 6.3 * len(item.label)) + 6
        rows = rows_of[item.lane]
        row = next((n for n, end in enumerate(rows) if end <= begin), len(rows))
        if row == len(rows):
            rows.append(finish)
        else:
            rows[row] = finish
        placed.append((item, row))
    lane_top: dict[str, float] = {}
    y = float(top)
    for lane in timeline.lanes:
        lane_top[lane] = y
        y += max(len(rows_of[lane]), 2) * row_h + 12
    axis_y = y
    height = int(axis_y + 30)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{_e(timeline.title)}</text>',
    ]
    for index, lane in enumerate(timeline.lanes):
        y0 = lane_top[lane]
        h = max(len(rows_of[lane]), 2) * row_h + 12
        fill = "#f5f5f5" if index % 2 == 0 else "#ffffff"
        out.append(f'<rect x="0" y="{y0}" width="{width}" height="{h}" fill="{fill}"/>')
        out.append(f'<text x="10" y="{y0 + h / 2 + 4}" font-weight="bold">{_e(lane)}</text>')
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" '
               'stroke="#666"/>')
    ticks = 5
    for tick in range(ticks + 1):
        t = span * tick / ticks
        out.append(f'<line x1="{x(t):.1f}" y1="{axis_y}" x2="{x(t):.1f}" y2="{axis_y + 5}" '
                   'stroke="#666"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 18}" text-anchor="middle">'
                   f'{t:.2f} s</text>')
    for item, row in placed:
        y0 = lane_top[item.lane] + 6 + row * row_h
        colour = COLOURS.get(item.state, "#555")
        label = _e(item.label)
        if item.end is not None:
            w = max((item.end - item.start) * scale, 3.0)
            out.append(f'<rect x="{x(item.start):.1f}" y="{y0}" width="{w:.1f}" height="11" '
                       f'fill="{colour}" fill-opacity="0.35" stroke="{colour}">'
                       f'<title>{label} ({item.start:.3f}-{item.end:.3f} s)</title></rect>')
            out.append(f'<text x="{x(item.start) + 3:.1f}" y="{y0 + 9}" fill="#000">'
                       f'{label}</text>')
        else:
            out.append(f'<circle cx="{x(item.start):.1f}" cy="{y0 + 5}" r="4" fill="{colour}">'
                       f'<title>{label} ({item.start:.3f} s)</title></circle>')
            out.append(f'<text x="{x(item.start) + 7:.1f}" y="{y0 + 9}" fill="{colour}">'
                       f'{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


# -- writing ------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def add_timelines(guest: GuestReport, timeline_dir: Path, report_dir: Path) -> None:
    """Draw every scenario record of ``timeline_dir`` into ``report_dir/timelines``."""
    if not timeline_dir.is_dir():
        return
    for path in sorted(timeline_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        name = f"timelines/{guest.name}-{path.stem}.svg"
        _atomic_write(report_dir / name, render_svg(timeline_of(record)))
        guest.timelines.append((str(record.get("scenario", path.stem)), name))


LEGEND = [
    ("lanes, VF scenarios", "host: the simulated Hyper-V host's step (attach, detach, migrate); "
     "kernel: the device event the kernel sent; devd: the rule of devd.conf that matched it; "
     "scripts: each command the rule ran, with its exit status"),
    ("lanes, backup", "host: each VSS operation the host sent, with its answer; hv_vss driver: "
     "what the kernel's driver did; daemon and app hooks: their acknowledgements; filesystems: "
     "while they were suspended; writer: a write started during the snapshot"),
    ("shapes", "a bar lasts from its start to its end; a dot is one moment; "
     "labels that would overlap go to a further row of the same lane"),
    ("colours", "green: succeeded; red: failed; blue: information"),
    ("time", "seconds from the start of the scenario, left to right"),
]


def _outcome_counts(guest: GuestReport) -> str:
    counts: dict[str, int] = {}
    for check in guest.checks:
        counts[check.outcome] = counts.get(check.outcome, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no checks ran"


def _md(text: str) -> str:
    """``text`` as one Markdown table cell or line: no markup of its own."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", " ".join(str(text).split()))


def _links(g: GuestReport) -> list[tuple[str, str]]:
    found = [("check output", g.check_output), ("deploy log", g.deploy_log),
             ("JUnit XML", g.junit)]
    return [(what, name) for what, name in found if name]


def summary_markdown(guests: list[GuestReport], title: str,
                     about: Optional[list[tuple[str, str]]] = None) -> str:
    ok = all(g.ok for g in guests) and bool(guests)
    lines = [f"# {title}", "", f"**Result: {'PASSED' if ok else 'FAILED'}**", ""]
    if about:
        lines += ["| | |", "|---|---|"]
        lines += [f"| {_md(key)} | {_md(value)} |" for key, value in about]
        lines.append("")
    lines += ["| guest | provider | FreeBSD (simulated) | result | checks | files |",
              "|---|---|---|---|---|---|"]
    for g in guests:
        links = ", ".join(f"[{what}]({name})" for what, name in _links(g)) or "none"
        lines.append(f"| {g.name} | {g.provider} | {_md(g.freebsd_version or '-')} | "
                     f"{'passed' if g.ok else 'FAILED'} | {_outcome_counts(g)} | {links} |")
    for g in guests:
        lines += ["", f"## {g.name}", "", "| step | seconds |", "|---|---|"]
        lines += [f"| {step} | {seconds:.1f} |" for step, seconds in g.steps]
        links = [f"[{what}]({name})" for what, name in _links(g)]
        if links:
            lines += ["", "Files: " + ", ".join(links)]
        if g.error:
            lines += ["", f"**Error:** {g.error}"]
        if g.failed:
            lines += ["", "### Failed checks", ""]
            for check in g.failed:
                message = check.message.splitlines()[0] if check.message else ""
                lines.append(f"- `{check.name}`: {message}")
        lines += ["", "### Checks", "", "| check | result | seconds |", "|---|---|---|"]
        for check in g.checks:
            lines.append(f"| `{check.name}` | {check.outcome} | {check.seconds:.2f} |")
        if g.timelines:
            lines += ["", "### Timelines", ""]
            lines += [f"- [{scenario}]({name})" for scenario, name in g.timelines]
    if any(g.timelines for g in guests):
        lines += ["", "## Reading the timelines", ""]
        lines += [f"- **{what}**: {text}" for what, text in LEGEND]
    return "\n".join(lines) + "\n"


def summary_html(guests: list[GuestReport], title: str, report_dir: Path,
                 about: Optional[list[tuple[str, str]]] = None) -> str:
    ok = all(g.ok for g in guests) and bool(guests)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}.passed{color:#2e7d32}.failed,.error{color:#c62828;"
        "font-weight:bold}.skipped{color:#777}figure{margin:1em 0}"
        "pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="{"passed" if ok else "failed"}">Result: {"PASSED" if ok else "FAILED"}</p>',
    ]
    if about:
        parts.append('<table class="about">')
        parts += [f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in about]
        parts.append("</table>")
    parts.append("<table><tr><th>guest</th><th>provider</th><th>FreeBSD (simulated)</th>"
                 "<th>result</th><th>checks</th><th>files</th></tr>")
    for g in guests:
        state = "passed" if g.ok else "failed"
        parts.append(f'<tr><td><a href="#{_e(g.name)}">{_e(g.name)}</a></td>'
                     f"<td>{_e(g.provider)}</td><td>{_e(g.freebsd_version or '-')}</td>"
                     f"<td class=\"{state}\">{state}</td>"
                     f"<td>{_e(_outcome_counts(g))}</td><td>{_html_links(g)}</td></tr>")
    parts.append("</table>")
    for g in guests:
        parts.append(f'<h2 id="{_e(g.name)}">{_e(g.name)}</h2>')
        parts.append("<table><tr><th>step</th><th>seconds</th></tr>")
        parts += [f"<tr><td>{_e(s)}</td><td>{t:.1f}</td></tr>" for s, t in g.steps]
        parts.append("</table>")
        if _links(g):
            parts.append(f"<p>Files: {_html_links(g)}</p>")
        if g.error:
            parts.append(f'<p class="failed">Error: {_e(g.error)}</p>')
        if g.failed:
            parts.append("<h3>Failed checks</h3>")
            for check in g.failed:
                parts.append(f'<p class="failed">{_e(check.name)}</p>'
                             f"<pre>{_e(check.message)}</pre>")
        parts.append("<h3>Checks</h3><table><tr><th>check</th><th>result</th>"
                     "<th>seconds</th></tr>")
        for check in g.checks:
            tip = f' title="{_e(check.message)}"' if check.message else ""
            parts.append(f"<tr><td>{_e(check.name)}</td><td class=\"{check.outcome}\"{tip}>"
                         f"{check.outcome}</td><td>{check.seconds:.2f}</td></tr>")
        parts.append("</table>")
        if g.timelines:
            parts.append("<h3>Timelines</h3>")
            for scenario, name in g.timelines:
                svg = (report_dir / name).read_text(encoding="utf-8")
                parts.append(f"<figure>{svg}<figcaption>{_e(scenario)} "
                             f'(<a href="{_e(name)}">{_e(name)}</a>)</figcaption></figure>')
    if any(g.timelines for g in guests):
        parts.append('<h2 id="legend">Reading the timelines</h2><dl class="legend">')
        for what, text in LEGEND:
            parts.append(f"<dt>{_e(what)}</dt><dd>{_e(text)}</dd>")
        parts.append("</dl>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_links(g: GuestReport) -> str:
    return ", ".join(f'<a href="{_e(name)}">{_e(what)}</a>' for what, name in _links(g)) or "none"


def write_summaries(guests: list[GuestReport], report_dir: Path, title: str,
                    about: Optional[list[tuple[str, str]]] = None) -> None:
    """``summary.md`` and ``summary.html``; ``about`` is (what, value) rows for the run."""
    _atomic_write(report_dir / "summary.md", summary_markdown(guests, title, about))
    _atomic_write(report_dir / "summary.html", summary_html(guests, title, report_dir, about))


def publish(staging: Path, final: Path) -> None:
    """Replace ``final`` by the finished ``staging`` directory in one rename."""
    final = final.resolve()
    os.chmod(staging, 0o755)
    old: Optional[Path] = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
