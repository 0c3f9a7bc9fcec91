"""Benchmark hvbsd_vssd: round trip per op, the freeze window, idle CPU, RSS.

Runs the real daemon (``python3 -m hvbsd.vss -n``) against a fake VSS kernel
on a UNIX socket and the reference filesystem service (in memory, no real
I/O), drives CHECK/FREEZE/THAW cycles and prints p50/p99 per op, then leaves
the daemon idle and reads its CPU time and RSS from /proc.

The freeze window is what the daemon adds to a backup: from the moment it
read FREEZE (the read ioctl's result went out) to its answer, and the same
for THAW, measured with 0 hooks and with 4 hooks (``/bin/sh`` scripts that
exit 0), p50/p99, and the share of the request budget (``--budget``,
default 12 s) the slowest of them used.

    python3 bench/vss.py            # 10,000 cycles, 1,000 with hooks, 30 s idle
    python3 bench/vss.py --quick    # smoke run

Targets: p99 under 2 ms per op, idle CPU under 0.1 %, RSS under 25 MB, the
slowest freeze window under 5 % of the budget.
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

from hvbsd.vss import protocol, simwire  # noqa: E402
from hvbsd.vss.daemon import BUDGET  # noqa: E402
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
TARGET_BUDGET_SHARE = 0.05
HOOKS = 4


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


def window(kernel: DeviceKernelSide, op: int) -> float:
    """One request; seconds from handing it out on the daemon's read to its answer."""
    assert kernel.client is not None
    kernel.post(op)
    handed_out = None
    kernel.client.settimeout(30)
    while True:
        record = kernel.client.recv(simwire.DEVICE_RECORD_SIZE + 1)
        if not record:
            raise RuntimeError("the daemon closed the channel")
        decoded = simwire.decode_record(record)
        if decoded is None:
            raise RuntimeError(f"a record of {len(record)} bytes from the daemon")
        kind, message = decoded
        if kind == simwire.KIND_READ:
            reply = kernel.pending or protocol.encode(Op.NONE, 1, 0)
            kernel.pending = None
            kernel.client.send(simwire.encode_record(simwire.KIND_READ, reply))
            handed_out = time.perf_counter()
        elif kind == simwire.KIND_WRITE:
            if handed_out is None or message.status != Status.SUCCESS:
                raise RuntimeError(f"unexpected answer to {Op(op).name}: {message}")
            return time.perf_counter() - handed_out


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


def start_daemon(work: Path, kernel_path: str, fs_path: str, hooks: Path,
                 tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hvbsd.vss", "-n", "--device", kernel_path,
         "--sim-platform", fs_path, "--hooks-dir", str(hooks),
         "--state-file", str(work / f"state-{tag}"), "--pidfile", str(work / f"pid-{tag}"),
         "--log-file", str(work / f"messages-{tag}")],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), stdin=subprocess.DEVNULL)


def stop(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)


def freeze_windows(work: Path, fs_path: str, hooks: int, cycles: int) -> dict:
    """FREEZE and THAW windows (seconds) of a daemon with ``hooks`` hooks."""
    directory = work / f"hooks{hooks}"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    for index in range(hooks):
        hook = directory / f"{index + 1}0-app"
        hook.write_text("#!/bin/sh\nexit 0\n")
        hook.chmod(0o755)
    kernel_path = str(work / f"fsvss{hooks}")
    kernel = DeviceKernelSide(kernel_path)
    daemon = start_daemon(work, kernel_path, fs_path, directory, f"hooks{hooks}")
    try:
        kernel.wait_connected(10)
        windows: dict = {Op.FREEZE: [], Op.THAW: []}
        for _ in range(cycles):
            for op in (Op.FREEZE, Op.THAW):
                windows[op].append(window(kernel, op))
        kernel.close_client()
        return windows
    finally:
        stop(daemon)
        kernel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-fs", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help="500 cycles, 50 with hooks, 3 s idle")
    parser.add_argument("--cycles", type=int, help="CHECK/FREEZE/THAW cycles (10000)")
    parser.add_argument("--hook-cycles", type=int,
                        help="FREEZE/THAW cycles per freeze-window case (1000)")
    parser.add_argument("--idle", type=float, help="idle seconds to measure (30)")
    args = parser.parse_args()
    if args.serve_fs:
        return serve_fs(args.serve_fs)
    cycles = args.cycles or (500 if args.quick else 10000)
    hook_cycles = args.hook_cycles or (50 if args.quick else 1000)
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
    daemon = start_daemon(work, kernel_path, fs_path, work / "hooks", "main")
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
        kernel.close_client()
        stop(daemon)
        print(f"freeze window (read to answer) over {hook_cycles} FREEZE/THAW cycles,"
              f" request budget {BUDGET:g} s")
        slowest = 0.0
        for hooks in (0, HOOKS):
            windows = freeze_windows(work, fs_path, hooks, hook_cycles)
            for op, values in windows.items():
                values.sort()
                slowest = max(slowest, values[-1])
                print(f"  {hooks} hooks {Op(op).name:<6} p50"
                      f" {percentile(values, 0.50) * 1000:8.3f} ms   p99"
                      f" {percentile(values, 0.99) * 1000:8.3f} ms   max"
                      f" {values[-1] * 1000:8.3f} ms")
        if suspended_now(fs_path):
            raise RuntimeError("filesystems left suspended after the freeze-window runs")
        share = slowest / BUDGET
        print(f"slowest window: {slowest * 1000:.3f} ms = {share * 100:.3f} % of the budget")
        verdicts = [("p99 per op", worst_p99 < TARGET_P99_MS, f"{worst_p99:.3f} ms",
                     f"< {TARGET_P99_MS} ms"),
                    ("idle CPU", idle_percent < TARGET_IDLE_PERCENT, f"{idle_percent:.3f} %",
                     f"< {TARGET_IDLE_PERCENT} %"),
                    ("RSS", rss < TARGET_RSS_MB, f"{rss:.1f} MB", f"< {TARGET_RSS_MB} MB"),
                    ("budget used", share < TARGET_BUDGET_SHARE, f"{share * 100:.3f} %",
                     f"< {TARGET_BUDGET_SHARE * 100:g} %")]
        for name, ok, value, target in verdicts:
            print(f"{'PASS' if ok else 'MISS'} {name}: {value} (target {target})")
        return 0 if all(ok for _, ok, _, _ in verdicts) else 1
    finally:
        stop(daemon)
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
