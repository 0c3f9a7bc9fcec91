"""The simulated Hyper-V host of one guest: a background process and its clients.

The kernel side of the VSS devices must outlive any one command, so each
running guest can have one host process (``hvbsd sim host start GUEST``)::

    <state>/host.json    pid and start time of the host process
    <state>/host.sock    its control socket (JSON lines)
    <state>/host.log     what it did (driver events, devd dispatches)
    <state>/dev/hv_fsvss_dev, hv_appvss_dev     the VSS devices (hyperv_vss.VssDriver)
    <state>/dev/hv_kvp_dev       the KVP device (hyperv_kvp.KvpDriver)
    <state>/kernel/fs.sock   the filesystem service (/var/run/hvbsd-sim/fs.sock inside)

On start it attaches the drivers: the devices appear and devd gets DEVFS CDEV
CREATE through the guest's own rules (:func:`hvbsd.sim.devd_guest.dispatch`),
so the installed rules start the daemons (hv_kvp.c's ``hv_kvp_attach`` makes
``hv_kvp_dev`` with make_dev_p; sys/kern/kern_conf.c ``notify_create`` then
sends ``devctl_notify("DEVFS", "CDEV", "CREATE", "cdev=hv_kvp_dev")``, and
``destroy_dev`` the DESTROY, ``notify_destroy``). On stop it detaches: the openers are killed as
the drivers' detach does, devd gets DESTROY. It exits by itself when the
guest's holder goes, and ``Guest.stop``/``destroy`` stop it first.

Control requests (one JSON object per line, one reply line each)::

    {"op": "status"}                       -> {"ok": true, "ready": .., "driver": {..}, ..}
    {"op": "request", "host_op": "FREEZE", "timeout": 30}
        -> {"ok": true, "status": "HV_S_OK" | "HV_E_FAIL" | null, "latency": S, ...}
           (status null: no reply within the host's timeout)
    {"op": "events", "since": N}           -> {"ok": true, "events": [...], "next": M}
    {"op": "kvp", "argv": ["ip", MAC]}     -> {"ok": true, "status": 0|1|2, "text": ".."}
           (the host's KVP request, :func:`hvbsd.sim.hyperv_kvp.command`)
    {"op": "kvp_events", "since": N}       -> like "events", of the KVP driver
    {"op": "stop", "graceful": true}       -> {"ok": true}, then the process exits

``backup(guest, ...)`` plays the host's backup sequence against it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from hvbsd.sim import namespace
from hvbsd.sim.guest import Guest, GuestError

CONTROL = "host.sock"
RECORD = "host.json"
LOGFILE = "host.log"
READY_SECONDS = 60.0
STOP_SECONDS = 20.0
PROBE_PATH = "/var/db/hvbsd-sim-backup.probe"
WRITER = "/usr/local/sbin/hvbsd-sim-write"


class HostError(GuestError):
    """The simulated host cannot do what was asked."""


# -- the host process ----------------------------------------------------------------------


class _Control:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = b""


class HostProcess:
    """What runs in the background for one guest."""

    def __init__(self, guest: Guest, vss_timeout: float) -> None:
        from hvbsd.sim.hyperv_vss import KernelFsService, Loop, VssDriver, bind_unix
        from hvbsd.sim.kernel import Kernel

        self.guest = guest
        self.holder = guest.require_running()
        self.loop = Loop()
        self.stopping: Optional[bool] = None  # None: running; else graceful or not
        self.ready = False
        self.dispatches: List[threading.Thread] = []
        self.dispatched: List[Dict[str, Any]] = []
        self.fs_service = KernelFsService(guest.kernel_dir / "fs.sock", Kernel(guest.kernel_dir))
        self.loop.add_reader(self.fs_service, lambda: self.fs_service.serve(0))
        holder_namespace = namespace.pid_namespace_of(self.holder)
        self.driver = VssDriver(
            self.loop, guest.state_dir / "dev", vss_timeout, announce=self._announce,
            in_guest=lambda pid: holder_namespace is not None
            and namespace.pid_namespace_of(pid) == holder_namespace)
        self.control = bind_unix(guest.state_dir / CONTROL)
        self.loop.add_reader(self.control, self._accept)
        from hvbsd.sim.hyperv_kvp import KvpDriver

        self.kvp = KvpDriver(self.loop, guest.state_dir / "dev", adapters=self._kvp_adapters)
        # work handed to the loop's thread by the threads that run `kvp` requests
        self.posted: queue.Queue[Callable[[], None]] = queue.Queue()
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        self.loop.add_reader(self.wake_read, self._run_posted)

    # KVP

    def _kvp_adapters(self) -> Dict[str, str]:
        """VMBus instance GUID -> hn name, for SET_IP_INFO (hv_kvp.c
        ``hv_kvp_convert_utf16_ipinfo_to_utf8`` compares each hn's channel GUID)."""
        from hvbsd.sim.hyperv_kvp import adapter_guid
        from hvbsd.sim.kernel import Kernel

        state = Kernel(self.guest.kernel_dir).snapshot()
        return {adapter_guid(i.ether): i.name for i in state.interfaces
                if i.driver == "hn" and i.ether}

    def _kvp_guid(self, mac: str) -> Optional[str]:
        from hvbsd.sim.hyperv_kvp import adapter_guid
        from hvbsd.sim.kernel import Kernel

        state = Kernel(self.guest.kernel_dir).snapshot()
        for interface in state.interfaces:
            if interface.driver == "hn" and (interface.ether or "").lower() == mac.lower():
                return adapter_guid(interface.ether or "")
        return None

    def post(self, work: Callable[[], None]) -> None:
        """Run ``work`` in the loop's thread (from any thread)."""
        self.posted.put(work)
        with contextlib.suppress(OSError):
            self.wake_write.send(b"x")

    def _run_posted(self) -> None:
        with contextlib.suppress(OSError):
            while self.wake_read.recv(4096):
                pass
        while True:
            try:
                work = self.posted.get_nowait()
            except queue.Empty:
                return
            work()

    def _kvp_request(self, connection: _Control, request: Dict[str, Any]) -> None:
        """``hyperv_kvp.command`` in a thread: each of its transactions is handed
        to the driver in the loop's thread, which must not wait for the answer."""
        from hvbsd.sim import hyperv_kvp

        argv = request.get("argv")
        if not isinstance(argv, list) or not all(isinstance(w, str) for w in argv) \
                or len(argv) > 8 or sum(len(w) for w in argv) > 16384:
            self._reply(connection, {"ok": False, "message": "argv is not a short list of words"})
            return
        host = self

        class Proxy:
            def transact(self, message: bytes, limit: float = 10.0) -> Tuple[int, bytes]:
                done = threading.Event()
                got: List[Tuple[int, bytes]] = []

                def answered(status: int, reply: bytes) -> None:
                    got.append((status, reply))
                    done.set()

                host.post(lambda: host.kvp.host_request(message, answered))
                if not done.wait(limit):
                    raise TimeoutError(f"no answer from the guest within {limit:g} s")
                return got[0]

        def work() -> None:
            try:
                status, text = hyperv_kvp.command(
                    Proxy(), argv, mac_to_guid=self._kvp_guid)  # type: ignore[arg-type]
                reply: Dict[str, Any] = {"ok": True, "status": status, "text": text}
            except Exception as error:  # never the host process's end
                reply = {"ok": False, "message": f"kvp: {error}"}
            logging.info("kvp: %s -> %s", " ".join(argv)[:200], reply.get("status"))
            self.post(lambda: self._reply(connection, reply))

        thread = threading.Thread(target=work, daemon=True)
        self.dispatches.append(thread)
        thread.start()

    # devd

    def _announce(self, kind: str, cdev: str) -> None:
        if self.stopping is False:
            return  # the guest is going away: nobody to tell
        line = f"!system=DEVFS subsystem=CDEV type={kind} cdev={cdev}"
        thread = threading.Thread(target=self._dispatch, args=(line,), daemon=True)
        self.dispatches.append(thread)
        thread.start()

    def _dispatch(self, line: str) -> None:
        from hvbsd.sim.devd_guest import dispatch

        try:
            record = dispatch(self.guest, line)
            entry: Dict[str, Any] = {"event": line, "result": record.describe()}
        except Exception as error:  # a dead guest, a broken rule: logged, never fatal
            entry = {"event": line, "error": str(error)}
        logging.info("devd: %s", json.dumps(entry))
        self.dispatched.append(entry)

    def _dispatching(self) -> bool:
        self.dispatches = [t for t in self.dispatches if t.is_alive()]
        return bool(self.dispatches)

    # control

    def _accept(self) -> None:
        try:
            sock, _ = self.control.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        connection = _Control(sock)
        self.loop.add_reader(sock, lambda: self._read(connection))

    def _read(self, connection: _Control) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(connection.sock)
            connection.sock.close()
            return
        connection.inbox += chunk
        while b"\n" in connection.inbox:
            line, connection.inbox = connection.inbox.split(b"\n", 1)
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as error:
                self._reply(connection, {"ok": False, "message": f"bad request: {error}"})
                continue
            self._handle(connection, request)

    def _reply(self, connection: _Control, message: Dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with contextlib.suppress(OSError):
            connection.sock.setblocking(True)
            connection.sock.settimeout(2.0)
            connection.sock.sendall(data)
            connection.sock.setblocking(False)

    def _handle(self, connection: _Control, request: Dict[str, Any]) -> None:
        op = request.get("op")
        if op == "status":
            from hvbsd.sim.kernel import Kernel

            state = Kernel(self.guest.kernel_dir).snapshot()
            self._reply(connection, {
                "ok": True, "pid": os.getpid(), "ready": self.ready,
                "driver": self.driver.status(), "kvp": self.kvp.status(),
                "suspended": state.suspended,
                "frozen": [m.mountpoint for m in state.mounts if m.fsid in state.suspended],
                "pool_syncs": state.pool_syncs, "dispatched": self.dispatched})
        elif op == "events":
            since = int(request.get("since", 0))
            events = self.driver.events
            self._reply(connection, {"ok": True, "events": events[since:], "next": len(events)})
        elif op == "request":
            self._host_request(connection, request)
        elif op == "kvp":
            self._kvp_request(connection, request)
        elif op == "kvp_events":
            since = int(request.get("since", 0))
            events = self.kvp.events
            self._reply(connection, {"ok": True, "events": events[since:], "next": len(events)})
        elif op == "stop":
            self.stopping = bool(request.get("graceful", True))
            self._reply(connection, {"ok": True})
        else:
            self._reply(connection, {"ok": False, "message": f"unknown op {op!r}"})

    def _host_request(self, connection: _Control, request: Dict[str, Any]) -> None:
        from hvbsd.sim.hyperv_vss import HOST_OPS, STATUS_NAMES

        name = str(request.get("host_op", ""))
        if name not in HOST_OPS:
            self._reply(connection, {"ok": False, "message": f"unknown host op {name!r}"})
            return
        try:
            timeout = float(request.get("timeout", 30.0))
        except (TypeError, ValueError):
            timeout = 30.0
        started = time.monotonic()
        done = {"sent": False}

        def answer(status: Optional[int], extra: Dict[str, Any]) -> None:
            if done["sent"]:
                return  # the host gave up already
            done["sent"] = True
            self.loop.cancel(timer)
            reply = {"ok": True, "host_op": name,
                     "status": None if status is None else STATUS_NAMES[status],
                     "latency": round(time.monotonic() - started, 4), **extra}
            logging.info("host: %s -> %s", name, reply["status"] or "no reply")
            self._reply(connection, reply)

        timer = self.loop.call_at(started + timeout, lambda: answer(None, {}))
        self.driver.host_request(HOST_OPS[name], answer)

    # running

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        self.driver.attach()
        self.kvp.attach()
        self._announce("CREATE", "hv_kvp_dev")
        next_check = 0.0
        while self.stopping is None:
            self.loop.run_once(0.2)
            if not self.ready and not self._dispatching():
                self.ready = True
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.5
                if self.guest.pid != self.holder:
                    logging.info("the guest's holder is gone: stopping")
                    self.stopping = False
        graceful = bool(self.stopping)
        self.driver.detach(kill=True)
        self.kvp.detach(kill=True)  # hv_kvp_detach: SIGKILL the opener, destroy_dev
        self._announce("DESTROY", "hv_kvp_dev")
        deadline = time.monotonic() + STOP_SECONDS
        while graceful and self._dispatching() and time.monotonic() < deadline:
            self.loop.run_once(0.1)  # DESTROY's onestop may need the fs service
        self.fs_service.close()
        self.control.close()
        self.wake_read.close()
        self.wake_write.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.guest.state_dir / CONTROL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.guest.state_dir / RECORD)
        logging.info("stopped")
        return 0


def serve_main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hvbsd.sim.host")
    parser.add_argument("root")
    parser.add_argument("name")
    parser.add_argument("--vss-timeout", type=float, default=15.0)
    args = parser.parse_args(argv)
    guest = Guest(args.name, args.root)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    record = {"pid": os.getpid(), "starttime": namespace.process_starttime(os.getpid()),
              "vss_timeout": args.vss_timeout}
    (guest.state_dir / RECORD).write_text(json.dumps(record))
    try:
        return HostProcess(guest, args.vss_timeout).run()
    except Exception:
        logging.exception("host process failed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(guest.state_dir / RECORD)
        return 1


# -- clients -----------------------------------------------------------------------------


def host_pid(guest: Guest) -> Optional[int]:
    """PID of the guest's running host process, or None."""
    try:
        record = json.loads((guest.state_dir / RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid = int(record.get("pid", 0))
    if pid > 0 and namespace.process_starttime(pid) == record.get("starttime"):
        return pid
    return None


def call(guest: Guest, request: Dict[str, Any], timeout: float = 10.0) -> Dict[str, Any]:
    """One control request to the guest's host process, and its reply."""
    from hvbsd.sim.hyperv_vss import connect_unix

    try:
        sock = connect_unix(guest.state_dir / CONTROL, timeout)
    except OSError as error:
        raise HostError(f"guest {guest.name!r}: the simulated host is not running"
                        f" ({error.strerror})") from None
    with sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while b"\n" not in data:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise HostError(f"guest {guest.name!r}: no answer from the simulated host"
                                f" within {timeout:g} s") from None
            if not chunk:
                raise HostError(f"guest {guest.name!r}: the simulated host closed the"
                                " connection")
            data += chunk
    reply: Dict[str, Any] = json.loads(data.split(b"\n", 1)[0])
    if not reply.get("ok"):
        raise HostError(f"simulated host: {reply.get('message', 'failed')}")
    return reply


@contextlib.contextmanager
def _host_lock(guest: Guest) -> Any:
    handle = os.open(guest.state_dir / "host.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def start(guest: Guest, vss_timeout: float = 15.0) -> int:
    """Start the guest's host process unless it runs; wait until devd has been told."""
    guest.require_running()
    with _host_lock(guest):
        pid = host_pid(guest)
        if pid is None:
            with open(guest.state_dir / LOGFILE, "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "hvbsd.sim.host", str(guest.root), guest.name,
                     "--vss-timeout", repr(float(vss_timeout))],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                    start_new_session=True)
            pid = process.pid
        else:
            process = None
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if process is not None and process.poll() is not None:
                tail = (guest.state_dir / LOGFILE).read_text(errors="replace").splitlines()[-3:]
                raise HostError(f"guest {guest.name!r}: the simulated host exited"
                                f" {process.returncode}: {' / '.join(tail)}")
            with contextlib.suppress(HostError):
                if call(guest, {"op": "status"}, 5.0)["ready"]:
                    return pid
            if time.monotonic() > deadline:
                raise HostError(f"guest {guest.name!r}: the simulated host was not ready"
                                f" within {READY_SECONDS:g} s")
            time.sleep(0.05)


def stop(guest: Guest, graceful: bool = True, timeout: float = STOP_SECONDS) -> bool:
    """Stop the guest's host process; False when none was running."""
    pid = host_pid(guest)
    if pid is None:
        return False
    starttime = namespace.process_starttime(pid)
    with contextlib.suppress(HostError, OSError):
        call(guest, {"op": "stop", "graceful": graceful}, 5.0)
    deadline = time.monotonic() + timeout
    while namespace.process_starttime(pid) == starttime:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the process this module started, by its id
        time.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(guest.state_dir / RECORD)
    return True


def kvp(guest: Guest, argv: List[str], timeout: float = 60.0) -> Dict[str, Any]:
    """One ``hvbsd sim kvp`` request: {"status": exit status, "text": what to print}."""
    return call(guest, {"op": "kvp", "argv": list(argv)}, timeout)


def request(guest: Guest, host_op: str, host_timeout: float = 30.0) -> Dict[str, Any]:
    """Send one host request; the reply says what the host saw (status None: no reply)."""
    return call(guest, {"op": "request", "host_op": host_op, "timeout": host_timeout},
                host_timeout + 10.0)


# -- the backup scenario --------------------------------------------------------------------


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> Optional[str]:
    """One line of the writer's output within ``timeout``; None when none came."""
    import select

    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        return None
    line = process.stdout.readline()
    return line.decode(errors="replace").strip() or None


class BackupBusy(HostError):
    """The guest is in a backup already."""

    exit_status = 2


@contextlib.contextmanager
def _backup_lock(guest: Guest) -> Any:
    """One backup per guest: the driver takes one transaction at a time, and a
    second host's THAW would end the first one's snapshot."""
    path = guest.state_dir / "backup.lock"
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise HostError(f"guest {guest.name!r}: cannot open {path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(f"guest {guest.name!r} is in a backup already (another"
                             " 'hvbsd sim backup' runs); try again when it has finished"
                             ) from None
        yield
    finally:
        os.close(handle)


def backup(guest: Guest, *, thaw: bool = True, host_timeout: float = 30.0,
           probe: str = PROBE_PATH, snapshot_seconds: float = 0.5) -> Dict[str, Any]:
    """The host's backup: HOT_BACKUP check, FREEZE, snapshot (with a write), THAW.

    ``consistent`` is true only when the host saw every step succeed AND the
    probe write was held back for the whole snapshot (nothing flowed while the
    snapshot was taken, nothing was thawed under it). A guest already in a
    backup is refused with BackupBusy.
    """
    guest.require_running()
    with _backup_lock(guest):
        return _backup(guest, thaw=thaw, host_timeout=host_timeout, probe=probe,
                       snapshot_seconds=snapshot_seconds)


def _backup(guest: Guest, *, thaw: bool, host_timeout: float, probe: str,
            snapshot_seconds: float) -> Dict[str, Any]:
    from hvbsd.sim.kernel import Kernel

    start(guest)
    kernel = Kernel(guest.kernel_dir)
    steps: List[Dict[str, Any]] = []
    result: Dict[str, Any] = {"guest": guest.name, "steps": steps}
    writes: Dict[str, Any] = {"probe": probe, "blocked_during_snapshot": None,
                              "flowed_during_snapshot": None, "flowed_after_thaw": None}
    result["writes"] = writes
    reasons: List[str] = []

    def host_step(step: str, host_op: str) -> bool:
        reply = request(guest, host_op, host_timeout)
        entry = {"step": step, "host_op": host_op, "status": reply["status"] or "no reply",
                 "latency": reply["latency"]}
        if "flags" in reply:
            entry["flags"] = reply["flags"]
        steps.append(entry)
        if reply["status"] != "HV_S_OK":
            reasons.append(f"{step}: the host saw {entry['status']}")
        return bool(reply["status"] == "HV_S_OK")

    vss_ok = host_step("check", "HOT_BACKUP") and host_step("freeze", "FREEZE")
    writer: Optional[subprocess.Popen[bytes]] = None
    if vss_ok:
        began = time.monotonic()
        state = kernel.snapshot()
        frozen = [m.mountpoint for m in state.mounts if m.fsid in state.suspended]
        limit = host_timeout + snapshot_seconds + 10.0 if thaw else snapshot_seconds + 1.0
        writer = guest.popen([WRITER, "-t", f"{limit:g}", probe, f"backup probe {time.time()}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        first = _read_line(writer, 5.0)
        writes["blocked_during_snapshot"] = bool(first and first.startswith("blocked"))
        writes["flowed_during_snapshot"] = first == "written"
        time.sleep(max(0.0, snapshot_seconds - (time.monotonic() - began)))
        if writes["blocked_during_snapshot"] and _read_line(writer, 0.0) == "written":
            # held back at first, then let through before the host's THAW
            writes["flowed_during_snapshot"] = True
            writes["flowed_after_thaw"] = False
        state = kernel.snapshot()
        still = [m.mountpoint for m in state.mounts if m.fsid in state.suspended]
        steps.append({"step": "snapshot", "frozen": frozen,
                      "latency": round(time.monotonic() - began, 4)})
        if sorted(still) != sorted(frozen):
            steps[-1]["frozen_at_end"] = still
            reasons.append("snapshot: the frozen filesystems changed while it was taken")
        if writes["flowed_during_snapshot"]:
            reasons.append("snapshot: a write flowed while it was taken")
        elif not writes["blocked_during_snapshot"]:
            reasons.append("snapshot: the probe write neither blocked nor flowed")
        if thaw:
            vss_ok = host_step("thaw", "THAW") and vss_ok
            if writes["blocked_during_snapshot"] and writes["flowed_after_thaw"] is None:
                writes["flowed_after_thaw"] = _read_line(writer, 5.0) == "written"
        else:
            steps.append({"step": "thaw", "host_op": "THAW", "status": "not sent",
                          "latency": None})
    if writer is not None:
        try:
            writer.wait(snapshot_seconds + 5.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(writer.pid, signal.SIGKILL)  # the writer this function started
            writer.wait()
    state = kernel.snapshot()
    result["frozen_after"] = [m.mountpoint for m in state.mounts if m.fsid in state.suspended]
    result["vss_ok"] = bool(vss_ok)
    result["consistent"] = bool(vss_ok) and not reasons
    if reasons:
        result["not_consistent_because"] = reasons
    return result


if __name__ == "__main__":
    sys.exit(serve_main())
