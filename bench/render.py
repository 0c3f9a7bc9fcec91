"""Benchmark: hosts rendered per second by `hvbsd render`'s Python API and by
ansible-playbook's template module, measured side by side in one run.

    python3 bench/render.py [--hosts 10000] [--sample 20] [--jobs N]

The inventory is generated on the fly: a fleet where group settings are shared
and every host has its own interfaces and addresses. The API path validates
and renders every host (in --jobs processes); the Ansible path renders a
sample of hosts with ansible.builtin.template (connection local, forks 10).
Targets: >= 5,000 hosts/s and >= 100x faster per host than Ansible.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def generate_host(index: int) -> dict:
    """One host of the fleet: Azure-style lagg hosts, some with a second static NIC."""
    octet_hi, octet_lo = divmod(index, 250)
    host = {
        "hyperv_guest_mode": "lagg" if index % 5 else "transparent",
        "hyperv_guest_vf_delay": 120,
        "hyperv_guest_interfaces": [{"name": "hn0", "ipv4": "syncdhcp"}],
        "hyperv_vss_exclude": ["/mnt/scratch*"] if index % 3 == 0 else [],
    }
    if index % 2:
        host["hyperv_guest_interfaces"].append({
            "name": "hn1", "ipv4": "static", "ipv4_address": f"10.{octet_hi % 250}.{octet_lo}.4",
            "ipv4_prefix": 24, "ipv6": "static", "ipv6_address": f"fd00::{index:x}",
        })
    if index % 7 == 0:
        host["hyperv_guest_interfaces"][0]["vfup"] = {"lagg_options": "mtu 1500"}
    return host


def _render_range(bounds: tuple[int, int]) -> int:
    from hvbsd.render import render_host

    start, stop = bounds
    total = 0
    for index in range(start, stop):
        total += len(render_host(generate_host(index)))
    return total


def bench_api(hosts: int, jobs: int) -> float:
    """Seconds to validate and render `hosts` hosts."""
    _render_range((0, 50))  # import, compile and load once, outside the clock
    chunks = [(start, min(start + hosts // jobs + 1, hosts))
              for start in range(0, hosts, hosts // jobs + 1)]
    started = time.perf_counter()
    if jobs == 1:
        files = _render_range((0, hosts))
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            files = sum(pool.map(_render_range, chunks))
    elapsed = time.perf_counter() - started
    assert files >= hosts * 5, files
    return elapsed


PLAYBOOK = """
- name: Render hvbsd's templates
  hosts: all
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/hyperv_guest/defaults/main.yml
    - {root}/roles/hyperv_vss/defaults/main.yml
    - {root}/templates/manifest.yml
  tasks:
    - name: Render the files
      ansible.builtin.template:
        src: "{root}/templates/{{{{ item.template }}}}"
        dest: "{out}/{{{{ inventory_hostname }}}}-{{{{ item.name }}}}"
        mode: "{{{{ item.mode }}}}"
      loop: "{{{{ outputs | rejectattr('per_interface', 'defined') }}}}"
      when: >-
        switches[item.when].variable is none or
        lookup('vars', switches[item.when].variable) == switches[item.when].equals
"""


def bench_ansible(sample: int) -> float:
    """Seconds for ansible-playbook to render `sample` hosts."""
    work = Path(tempfile.mkdtemp(prefix="hvbsd-bench-"))
    try:
        out = work / "out"
        out.mkdir()
        inventory = {"all": {"hosts": {f"host{i}": generate_host(i) for i in range(sample)}}}
        (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
        (work / "play.yml").write_text(PLAYBOOK.format(root=ROOT, out=out))
        (work / "ansible.cfg").write_text("[defaults]\nforks = 10\nretry_files_enabled = False\n")
        env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
               "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_NOCOLOR": "1"}
        command = [sys.executable, "-m", "ansible.cli.playbook", "-i",
                   str(work / "inventory.yml"), str(work / "play.yml")]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                                check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"ansible-playbook failed:\n{result.stdout}\n{result.stderr}")
        return elapsed
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    api = bench_api(args.hosts, args.jobs)
    ansible = bench_ansible(args.sample)
    api_rate, ansible_rate = args.hosts / api, args.sample / ansible
    ratio = (ansible / args.sample) / (api / args.hosts)
    print(f"hvbsd render API : {args.hosts:6d} hosts in {api:7.2f} s = {api_rate:9.0f} hosts/s"
          f" ({args.jobs} processes)")
    print(f"ansible-playbook : {args.sample:6d} hosts in {ansible:7.2f} s = "
          f"{ansible_rate:9.1f} hosts/s")
    print(f"per-host ratio   : {ratio:.0f}x faster (targets: >= 5000 hosts/s, >= 100x)")
    return 0 if api_rate >= 5000 and ratio >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
