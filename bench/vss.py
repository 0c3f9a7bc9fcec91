"""Benchmark hvbsd_vssd: round trip per op, idle CPU, RSS.

Runs the real daemon (``python3 -m hvbsd.vss -n``) against a fake VSS kernel
on a UNIX socket and the reference filesystem service (in memory, no real
I/O), drives CHECK/FREEZE/THAW cycles and prints p50/p99 per op, then leaves
the daemon idle and reads its CPU time and RSS from /proc.

    python3 bench/vss.py            # 10,000 cycles, 30 s idle
    python3 bench/vss.py --quick    # smoke run

Targets: p99 under 2 ms per op, idle CPU under 0.1 %, RSS under 25 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hvbsd.vss.mounts import Mount  # noqa: E402
from hvbsd.vss.protocol import Op, Status  # noqa: E402
from hvbsd.vss.simwire import DeviceKernelSide, LineSocket, SimFsServer  # noqa: E402

MOUNTS = [
    Mount((1, 1), "ufs", "/", "/dev/da0p2"),
    Mount((2, 2), "devfs", "/dev", "devfs"),
    Mount((3, 3), "ufs", "/var", "/dev/da0p3"),
    Mount((4, 4), "zfs", "/data", "tank/data"),
    Mount((5, 5), "tmpfs", "/tmp", "tmpfs"),
]
TARGET_P99_MS = 2.0
TARGET_IDLE_PERCENT = 0.1
TARGET_RSS_MB = 25.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields after the command: state is index 0, utime 11, stime 12
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def request(kernel: DeviceKernelSide, op: int) -> float:
    """One request through the simulated device (POLLIN, read, write); seconds taken."""
    started = time.perf_counter()
    answer = kernel.request(op, timeout=10)
    elapsed = time.perf_counter() - started
    if answer.status != Status.SUCCESS:
        raise RuntimeError(f"unexpected answer to {Op(op).name}: {answer}")
    return elapsed


def serve_fs(path: str) -> int:
    """Child process: the reference filesystem service until SIGTERM."""
    server = SimFsServer(path, MOUNTS)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    server.serve_forever()
    server.close()
    return 0


def wait_for_socket(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path}: the filesystem service did not start")
        time.sleep(0.01)


def suspended_now(fs_path: str) -> bool:
    """Whether any filesystem is suspended: try to suspend each UFS ourselves."""
    for mount in MOUNTS:
        if mount.fstype != "ufs":
            continue
        connection = LineSocket(fs_path, 5.0)
        reply = connection.request({"op": "suspend", "fsid": list(mount.fsid)})
        connection.close()
        if not reply["ok"]:
            return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-fs", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="500 cycles, 3 s idle")
    parser.add_argument("--cycles", type=int, help="CHECK/FREEZE/THAW cycles (10000)")
    parser.add_argument("--idle", type=float, help="idle seconds to measure (30)")
    args = parser.parse_args()
    if args.serve_fs:
        return serve_fs(args.serve_fs)
    cycles = args.cycles or (500 if args.quick else 10000)
    idle = args.idle or (3.0 if args.quick else 30.0)

    work = Path(tempfile.mkdtemp(prefix="vssbench", dir="/tmp"))
    kernel_path, fs_path = str(work / "fsvss"), str(work / "fs")
    (work / "hooks").mkdir(mode=0o755)
    # the filesystem service in its own process, so it does not share a GIL with
    # the fake kernel below
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-fs", fs_path],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), stdin=subprocess.PIPE)
    wait_for_socket(fs_path)
    kernel = DeviceKernelSide(kernel_path)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hvbsd.vss", "-n", "--device", kernel_path,
         "--sim-platform", fs_path, "--hooks-dir", str(work / "hooks"),
         "--state-file", str(work / "state"), "--pidfile", str(work / "pid"),
         "--log-file", str(work / "messages")],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), stdin=subprocess.DEVNULL)
    try:
        kernel.wait_connected(10)
        timings: dict[int, list[float]] = {Op.CHECK: [], Op.FREEZE: [], Op.THAW: []}
        for _ in range(cycles):
            for op in (Op.CHECK, Op.FREEZE, Op.THAW):
                timings[op].append(request(kernel, op))
        if suspended_now(fs_path):
            raise RuntimeError("filesystems left suspended after the last THAW")
        print(f"hvbsd_vssd round trip over {cycles} CHECK/FREEZE/THAW cycles"
              f" ({len(MOUNTS)} mounts: 2 UFS suspended, 1 ZFS pool synced)")
        worst_p99 = 0.0
        for op, values in timings.items():
            values.sort()
            p50, p99 = percentile(values, 0.50) * 1000, percentile(values, 0.99) * 1000
            worst_p99 = max(worst_p99, p99)
            print(f"  {Op(op).name:<6} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
        time.sleep(0.5)  # let the last answer's logging settle
        before = cpu_seconds(daemon.pid)
        time.sleep(idle)
        used = cpu_seconds(daemon.pid) - before
        idle_percent = used / idle * 100
        rss = rss_mb(daemon.pid)
        print(f"idle CPU over {idle:g} s: {idle_percent:.3f} %  ({used:.3f} s of CPU)")
        print(f"RSS: {rss:.1f} MB")
        verdicts = [("p99 per op", worst_p99 < TARGET_P99_MS, f"{worst_p99:.3f} ms",
                     f"< {TARGET_P99_MS} ms"),
                    ("idle CPU", idle_percent < TARGET_IDLE_PERCENT, f"{idle_percent:.3f} %",
                     f"< {TARGET_IDLE_PERCENT} %"),
                    ("RSS", rss < TARGET_RSS_MB, f"{rss:.1f} MB", f"< {TARGET_RSS_MB} MB")]
        for name, ok, value, target in verdicts:
            print(f"{'PASS' if ok else 'MISS'} {name}: {value} (target {target})")
        kernel.close_client()
        return 0 if all(ok for _, ok, _, _ in verdicts) else 1
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(5)
            except subprocess.TimeoutExpired:
                daemon.kill()
        kernel.close()
        server.terminate()
        server.wait(5)
        for child in work.rglob("*"):
            if child.is_file() or child.is_socket():
                child.unlink()
        for child in sorted(work.rglob("*"), reverse=True):
            child.rmdir()
        work.rmdir()


if __name__ == "__main__":
    raise SystemExit(main())
