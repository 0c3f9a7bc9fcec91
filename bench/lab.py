"""Benchmark: wall time of `hvbsd lab run` on the sim provider for 1 and 3 guests,
measured side by side in one run.

    python3 bench/lab.py [--sizes 1,3]

Each run is a complete `hvbsd lab run --guests N` (create, one ansible-playbook
for all guests, reboot, the checks of tests/infra in parallel, the report,
down) in a temporary lab directory. Target: 3 guests in under 60 s.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0


def lab_run(guests: int, work: Path) -> tuple[float, int, dict[str, float]]:
    """Seconds of one `hvbsd lab run`, its exit status, and the steps of its first guest."""
    env = dict(os.environ, HVBSD_LAB_HOME=str(work / f"lab-{guests}"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    report = work / f"report-{guests}"
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd", "lab", "run", "--guests", str(guests), "--report",
         str(report), "--progress", "quiet"],
        env=env, cwd=work, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - began
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
    steps: dict[str, float] = {}
    summary = report / "summary.md"
    if summary.is_file():
        text = summary.read_text()
        first = text.split("\n## ", 2)[1] if "\n## " in text else ""
        for step, value in re.findall(r"^\| (\w+) \| ([\d.]+) \|$", first, re.MULTILINE):
            steps[step] = float(value)
    return seconds, result.returncode, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3", help="guest counts, comma separated")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="hvbsd-bench-lab-") as work:
        for guests in sizes:
            rows.append((guests, *lab_run(guests, Path(work))))
    columns = ["create", "deploy", "reboot", "check"]
    print(f"{'guests':>6} {'wall s':>8} {'exit':>4}  " + " ".join(f"{c:>7}" for c in columns)
          + "   (steps of the first guest, s)")
    for guests, seconds, status, steps in rows:
        cells = " ".join(f"{steps.get(c, float('nan')):7.1f}" for c in columns)
        print(f"{guests:>6} {seconds:8.1f} {status:>4}  {cells}")
    largest = max(rows, key=lambda row: row[0])
    verdict = "met" if largest[1] < TARGET_SECONDS and largest[2] == 0 else "MISSED"
    print(f"target: {largest[0]} guests under {TARGET_SECONDS:.0f} s: {verdict} "
          f"({largest[1]:.1f} s)")
    return 0 if all(row[2] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
