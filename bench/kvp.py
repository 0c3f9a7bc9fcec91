"""Benchmark hvbsd_kvpd beside hvbsd_vssd: requests/s and p99 per operation, idle CPU, RSS.

Runs the real KVP daemon (``python3 -m hvbsd.kvp -n``) against the simulated
hv_kvp driver (:mod:`hvbsd.sim.hyperv_kvp`, in this process), with FreeBSD's
commands standing in as ``sh`` scripts that print a lagg-mode ``ifconfig -a``,
a ``netstat -rn`` and the sysctls, so GET_IP_INFO pays for the two commands
it runs, as on a guest. Then the real VSS daemon the same way (bench/vss.py's
fake kernel and filesystem service) for CHECK, FREEZE and THAW, and prints
both side by side: requests per second, p50 and p99 per operation, idle CPU
and RSS.

    python3 bench/kvp.py            # 2,000 requests per operation, 30 s idle
    python3 bench/kvp.py --quick    # smoke run: 100 requests, 3 s idle

Targets for hvbsd_kvpd: p99 of the pool operations under 2 ms, of those that
run commands (GET_IP_INFO, the AUTO pool's address entries) under 50 ms (the
driver allows 5 s), idle CPU under 0.1 %, RSS under 25 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import vss as vss_bench  # noqa: E402

from hvbsd.sim import hyperv_kvp as host  # noqa: E402
from hvbsd.sim.hyperv_vss import Loop  # noqa: E402
from hvbsd.vss.protocol import Op as VssOp  # noqa: E402
from hvbsd.vss.simwire import DeviceKernelSide  # noqa: E402

MAC = "00:15:5d:0a:0b:0c"
IFCONFIG = f"""\
lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384
\tinet 127.0.0.1 netmask 0xff000000
\tinet6 ::1 prefixlen 128
hn0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500
\tether {MAC}
\tinet6 fe80::215:5dff:fe0a:b0c%hn0 prefixlen 64 scopeid 0x2
mce0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500
\tether {MAC}
lagg0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500
\tether {MAC}
\tinet 10.0.0.4 netmask 0xffffff00 broadcast 10.0.0.255
\tinet6 2001:db8::4 prefixlen 64
\tlaggproto failover lagghash l2,l3,l4
\tlaggport: mce0 flags=5<MASTER,ACTIVE>
\tlaggport: hn0 flags=0<>
"""
NETSTAT = "Internet:\ndefault            10.0.0.1           UGS           lagg0\n"
SYSCTL = "bench.example.com\nFreeBSD\n14.5-RELEASE\namd64\n"
RC_CONF = """\
# BEGIN hvbsd managed block
ifconfig_hn0="DHCP"
hvbsd_lagg_hn0="lagg0"
# END hvbsd managed block
"""
TARGET_POOL_P99_MS = 2.0
TARGET_IP_P99_MS = 50.0
TARGET_IDLE_PERCENT = 0.1
TARGET_RSS_MB = 25.0

Result = Tuple[str, str, float, float, float]  # daemon, op, requests/s, p50 ms, p99 ms


def measure(name: str, daemon: str, count: int, one: Callable[[int], None]) -> Result:
    """Requests per second (one at a time, as the driver sends them) and p50/p99."""
    timings: List[float] = []
    for index in range(count):
        before = time.perf_counter()
        one(index)
        timings.append(time.perf_counter() - before)
    return summary(daemon, name, timings)


def summary(daemon: str, name: str, timings: List[float]) -> Result:
    """Requests per second and p50/p99 (ms) of one operation's ``timings`` (seconds)."""
    timings = sorted(timings)
    return (daemon, name, len(timings) / sum(timings), vss_bench.percentile(timings, 0.5) * 1000,
            vss_bench.percentile(timings, 0.99) * 1000)


def idle_cpu_and_rss(pid: int, idle: float) -> Tuple[float, float]:
    """The daemon's CPU use (percent) over ``idle`` quiet seconds, then its RSS (MB)."""
    time.sleep(0.5)
    before = vss_bench.cpu_seconds(pid)
    time.sleep(idle)
    return (vss_bench.cpu_seconds(pid) - before) / idle * 100, vss_bench.rss_mb(pid)


def kvp_bench(work: Path, count: int, idle: float) -> Tuple[List[Result], float, float]:
    bin_dir, out = work / "bin", work / "out"
    bin_dir.mkdir()
    out.mkdir()
    for command, text in (("ifconfig", IFCONFIG), ("netstat", NETSTAT), ("sysctl", SYSCTL)):
        (out / command).write_text(text)
        script = bin_dir / command
        script.write_text(f"#!/bin/sh\nexec cat '{out / command}'\n")
        script.chmod(0o755)
    rc_conf = work / "rc.conf"
    rc_conf.write_text(RC_CONF)
    loop = Loop()
    guid = host.adapter_guid(MAC)
    driver = host.KvpDriver(loop, work, adapters=lambda: {guid: "hn0"})
    driver.attach()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"),
               PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hvbsd.kvp", "-n", "--device", str(driver.path), "--pool-dir",
         str(work / "pool"), "--rc-conf", str(rc_conf), "--resolv-conf", str(work / "none"),
         "--pidfile", str(work / "pid"), "--state-file", str(work / "state"), "--log-file",
         str(work / "messages")], env=env, stdin=subprocess.DEVNULL)
    try:
        driver.wait_registered(15)

        def ok(message: bytes, wanted: Tuple[int, ...] = (host.HV_S_OK,)) -> None:
            status, _ = driver.transact(message, 10)
            if status not in wanted:
                raise RuntimeError(f"status {status:#x} for op {message[0]}")

        results = [
            measure("SET", "hvbsd_kvpd", count,
                    lambda i: ok(host.host_set(0, f"key{i % 50}", f"value {i}"))),
            measure("GET", "hvbsd_kvpd", count,
                    lambda i: ok(host.host_get(0, f"key{i % 50}"))),
            measure("ENUMERATE pool", "hvbsd_kvpd", count,
                    lambda i: ok(host.host_enumerate(0, i % 50))),
            measure("ENUMERATE auto", "hvbsd_kvpd", count,
                    lambda i: ok(host.host_enumerate(2, i % 10))),
            measure("DELETE", "hvbsd_kvpd", count,
                    lambda i: ok(host.host_delete(0, f"key{i % 50}"),
                                 (host.HV_S_OK, 0x80070103))),
            measure("GET_IP_INFO", "hvbsd_kvpd", count,
                    lambda i: ok(host.host_get_ip_info(MAC.upper()))),
            measure("SET_IP_INFO", "hvbsd_kvpd", max(1, count // 10),
                    lambda i: ok(host.host_set_ip_info(guid, f"10.0.0.{10 + i % 200}", "24",
                                                       "10.0.0.1"))),
        ]
        idle_percent, rss = idle_cpu_and_rss(daemon.pid, idle)
        return results, idle_percent, rss
    finally:
        vss_bench.stop(daemon)
        driver.detach(kill=False)
        loop.close()


def vss_bench_run(work: Path, count: int, idle: float) -> Tuple[List[Result], float, float]:
    kernel_path, fs_path = str(work / "fsvss"), str(work / "fs")
    (work / "hooks").mkdir(mode=0o755)
    server = subprocess.Popen([sys.executable, str(ROOT / "bench/vss.py"), "--serve-fs",
                               fs_path], env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                              stdin=subprocess.PIPE)
    vss_bench.wait_for_socket(fs_path)
    kernel = DeviceKernelSide(kernel_path)
    daemon = vss_bench.start_daemon(work, kernel_path, fs_path, work / "hooks", "kvpbench")
    try:
        kernel.wait_connected(10)
        timings: Dict[int, List[float]] = {VssOp.CHECK: [], VssOp.FREEZE: [], VssOp.THAW: []}
        for _ in range(count):
            for op in timings:
                timings[op].append(vss_bench.request(kernel, op))
        results = [summary("hvbsd_vssd", VssOp(op).name, values)
                   for op, values in timings.items()]
        idle_percent, rss = idle_cpu_and_rss(daemon.pid, idle)
        return results, idle_percent, rss
    finally:
        kernel.close_client()
        vss_bench.stop(daemon)
        kernel.close()
        server.terminate()
        server.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 requests, 3 s idle")
    parser.add_argument("--requests", type=int, help="requests per operation (2000)")
    parser.add_argument("--idle", type=float, help="idle seconds to measure (30)")
    args = parser.parse_args()
    count = args.requests or (100 if args.quick else 2000)
    idle = args.idle or (3.0 if args.quick else 30.0)
    work = Path(tempfile.mkdtemp(prefix="kvpbench", dir="/tmp"))
    try:
        (work / "kvp").mkdir()
        (work / "vss").mkdir()
        kvp_results, kvp_idle, kvp_rss = kvp_bench(work / "kvp", count, idle)
        vss_results, vss_idle, vss_rss = vss_bench_run(work / "vss", max(1, count // 3), idle)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"{'daemon':<11} {'operation':<15} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for daemon, name, rate, p50, p99 in kvp_results + vss_results:
        print(f"{daemon:<11} {name:<15} {rate:8.0f} {p50:8.3f} {p99:8.3f}")
    print(f"{'daemon':<11} {'idle CPU':>9} {'RSS':>8}")
    print(f"{'hvbsd_kvpd':<11} {kvp_idle:8.3f}% {kvp_rss:6.1f}MB")
    print(f"{'hvbsd_vssd':<11} {vss_idle:8.3f}% {vss_rss:6.1f}MB")
    # GET_IP_INFO and the AUTO pool's addresses run ifconfig; SET_IP_INFO rewrites rc.conf
    runs_commands = ("GET_IP_INFO", "ENUMERATE auto", "SET_IP_INFO")
    pool_p99 = max(p99 for _, name, _, _, p99 in kvp_results if name not in runs_commands)
    ip_p99 = max(p99 for _, name, _, _, p99 in kvp_results if name in runs_commands)
    verdicts = [("pool p99", pool_p99 < TARGET_POOL_P99_MS, f"{pool_p99:.3f} ms",
                 f"< {TARGET_POOL_P99_MS} ms"),
                ("p99 with commands", ip_p99 < TARGET_IP_P99_MS, f"{ip_p99:.3f} ms",
                 f"< {TARGET_IP_P99_MS} ms"),
                ("idle CPU", kvp_idle < TARGET_IDLE_PERCENT, f"{kvp_idle:.3f} %",
                 f"< {TARGET_IDLE_PERCENT} %"),
                ("RSS", kvp_rss < TARGET_RSS_MB, f"{kvp_rss:.1f} MB", f"< {TARGET_RSS_MB} MB")]
    for name, ok, value, target in verdicts:
        print(f"{'PASS' if ok else 'MISS'} hvbsd_kvpd {name}: {value} (target {target})")
    return 0 if all(ok for _, ok, _, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
