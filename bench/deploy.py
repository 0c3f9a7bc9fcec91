"""Benchmark: `ansible-playbook deploy.yml` against 1 and 10 simulated guests,
first run and idempotent re-run, measured side by side in one run.

    python3 bench/deploy.py [--guests 10] [--forks 10]

Fresh guests are created in a temporary state directory and destroyed
afterwards. Each deploy uses the Azure settings of examples/group_vars/azure.yml
(lagg mode, hn0 by DHCP). Target: the re-run on 10 guests takes under a third
of the first run on them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP_VARS = ROOT / "examples" / "group_vars" / "azure.yml"


def write_inventory(directory: Path, state_dir: Path, names: list[str]) -> Path:
    """An INI inventory of the guests, with the Azure group_vars beside it."""
    inventory = directory / "hosts.ini"
    lines = ["[azure]", *names, "", "[azure:vars]", "ansible_connection=hvbsd_sim",
             f"ansible_hvbsd_sim_state_dir={state_dir}", ""]
    inventory.write_text("\n".join(lines))
    (directory / "group_vars").mkdir(exist_ok=True)
    shutil.copy(GROUP_VARS, directory / "group_vars" / "azure.yml")
    return inventory


def deploy(inventory: Path, forks: int, env: dict[str, str]) -> float:
    """Seconds one `ansible-playbook deploy.yml` takes; exits if it fails."""
    argv = [sys.executable, "-m", "ansible.cli.playbook",
            "-i", str(inventory), "--forks", str(forks), str(ROOT / "deploy.yml")]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                            check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"deploy failed:\n{result.stdout}{result.stderr}")
    return elapsed


def measure(count: int, forks: int, work: Path) -> tuple[float, float]:
    """(first run, re-run) seconds on `count` fresh guests."""
    from hvbsd.sim.guest import Guest

    state_dir = work / f"sim-{count}"
    state_dir.mkdir()
    names = [f"b{count}x{index}" for index in range(count)]
    guests = [Guest.create(name, state_dir) for name in names]
    try:
        (work / f"inv-{count}").mkdir()
        inventory = write_inventory(work / f"inv-{count}", state_dir, names)
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   HVBSD_SIM_HOME=str(state_dir))
        first = deploy(inventory, forks, env)
        again = deploy(inventory, forks, env)
    finally:
        for guest in guests:
            guest.destroy()
    return first, again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guests", type=int, default=10, help="size of the larger fleet")
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()

    from hvbsd.sim import namespace

    reason = namespace.probe()
    if reason is not None:
        sys.exit(f"simulated guests unavailable: {reason}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="hvbsd-bench-deploy.") as temporary:
        work = Path(temporary)
        for count in (1, args.guests):
            results[count] = measure(count, args.forks, work)

    print(f"{'guests':>6}  {'first run':>10}  {'re-run':>10}  {'re-run/first':>12}")
    for count, (first, again) in results.items():
        print(f"{count:>6}  {first:>9.1f}s  {again:>9.1f}s  {again / first:>12.2f}")
    first, again = results[args.guests]
    met = again < first / 3
    print(f"target: re-run of {args.guests} guests under a third of the first run: "
          f"{'met' if met else 'NOT met'} ({again / first:.2f})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
