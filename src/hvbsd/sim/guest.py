"""Simulated FreeBSD guests on Linux: create, start, stop, exec, destroy.

A guest ``NAME`` lives in ``ROOT/NAME`` (``ROOT`` = ``$HVBSD_SIM_HOME`` or
``~/.local/state/hvbsd/sim``)::

    guest.json        name, preset, nics, release (the FreeBSD release simulated)
    holder.json       pid and start time of the running holder (absent when stopped)
    kernel/           the simulated kernel (hvbsd.sim.kernel), bound at /var/run/hvbsd-sim
    upper/NAME/       upper layers of the overlays on /etc, /usr, /var, /boot, /root
    work/NAME/        overlayfs work directories
    tmp/ dev/         the guest's private /tmp and /dev
    rootfs/           mount point of the guest's root (a read-only tmpfs) while it runs

``Guest(name, root).exec(["ifconfig", "-l"])`` runs a command inside; see
:mod:`hvbsd.sim.namespace` for the mechanics.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import site
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from hvbsd import releases
from hvbsd.releases import Release
from hvbsd.sim import namespace

HOME_ENV = "HVBSD_SIM_HOME"
KERNEL_MOUNTPOINT = "/var/run/hvbsd-sim"
OVERLAID = ("etc", "usr", "var", "boot", "root")
# Overlays that start empty instead of over the host's directory: the guest's
# /root is FreeBSD root's own home, not the host's.
PRIVATE_OVERLAYS = ("root",)
PRESETS = ("ufs", "zfs", "mixed")
MAX_NICS = 8
GUEST_PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
# The environment of a root login on FreeBSD, which exec uses unless given one.
GUEST_ENVIRONMENT = {
    "PATH": GUEST_PATH,
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    "PWD": "/",
}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,62}")
# Characters overlayfs's option string cannot carry in a path.
_UNSAFE_PATH_CHARACTERS = (",", ":", "\n", "\\")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

PathLike = Union[str, "os.PathLike[str]"]


class GuestError(Exception):
    """A guest command failed; ``exit_status`` is what the CLI exits with."""

    exit_status = 1


class InvalidInput(GuestError):
    exit_status = 2


class NamespacesUnavailable(GuestError):
    exit_status = 69  # EX_UNAVAILABLE


class UnknownGuest(GuestError):
    pass


class GuestExists(GuestError):
    pass


class GuestNotRunning(GuestError):
    pass


class HolderDied(GuestNotRunning):
    """The guest's holder process is gone while the guest was never stopped."""


def default_root() -> Path:
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".local" / "state" / "hvbsd" / "sim"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"guest name {name!r}: must start with a letter and hold only letters, "
            "digits and '-' (at most 63 characters)"
        )
    return name


def check_release(release: Union[str, Release, None]) -> Release:
    """The Release asked for; InvalidInput (one line, with the choices) otherwise."""
    if release is None:
        return releases.default()
    if isinstance(release, Release):
        release = release.name
    try:
        return releases.get(release)
    except releases.UnknownRelease as error:
        raise InvalidInput(str(error)) from None


def require_namespaces() -> None:
    reason = namespace.probe()
    if reason is not None:
        raise NamespacesUnavailable(f"{reason}: {namespace.UNAVAILABLE_HINT}")


class Guest:
    """One simulated guest, by name, in a state root."""

    def __init__(self, name: str, root: Optional[PathLike] = None) -> None:
        self.name = check_name(name)
        root_path = Path(root) if root is not None else default_root()
        self.root = Path(os.path.abspath(root_path))
        text = str(self.root)
        bad = [c for c in _UNSAFE_PATH_CHARACTERS if c in text]
        if bad:
            raise InvalidInput(f"state directory {text!r}: must not contain {bad[0]!r}")

    def __repr__(self) -> str:
        return f"Guest({self.name!r}, root={str(self.root)!r})"

    # -- layout ----------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.root / self.name

    @property
    def kernel_dir(self) -> Path:
        return self.state_dir / "kernel"

    @property
    def _config_path(self) -> Path:
        return self.state_dir / "guest.json"

    @property
    def _holder_path(self) -> Path:
        return self.state_dir / "holder.json"

    @property
    def exists(self) -> bool:
        return self._config_path.is_file()

    def config(self) -> dict[str, Any]:
        self._require_exists()
        loaded: dict[str, Any] = json.loads(self._config_path.read_text(encoding="utf-8"))
        return loaded

    @property
    def release(self) -> Release:
        """The FreeBSD release the guest was created as (``guest.json``)."""
        name = self.config().get("release")
        try:
            return releases.get(name)
        except releases.UnknownRelease:
            shown = "no release recorded" if name is None else f"FreeBSD {str(name)[:20]}"
            raise GuestError(
                f"guest {self.name!r} was created as {shown}, which this hvbsd does not "
                f"simulate ({', '.join(releases.names())}): destroy it and create it again"
            ) from None

    # -- status ----------------------------------------------------------------------

    def _holder_record(self) -> Optional[dict[str, Any]]:
        try:
            record: dict[str, Any] = json.loads(self._holder_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"pid": 0, "starttime": -1}
        return record

    @property
    def pid(self) -> Optional[int]:
        """Host PID of the running holder, or None when stopped or dead."""
        record = self._holder_record()
        if record is None:
            return None
        pid = int(record.get("pid", 0))
        if pid > 0 and namespace.process_starttime(pid) == record.get("starttime"):
            return pid
        return None

    @property
    def status(self) -> str:
        """``running``, ``stopped``, ``dead`` (holder gone unexpectedly) or ``absent``."""
        if not self.exists:
            return "absent"
        if self._holder_record() is None:
            return "stopped"
        return "running" if self.pid is not None else "dead"

    def _require_exists(self) -> None:
        if not self.exists:
            raise UnknownGuest(f"guest {self.name!r}: no such guest in {self.root}")

    def require_running(self) -> int:
        """The holder's PID; a clear error when the guest is not running."""
        self._require_exists()
        record = self._holder_record()
        if record is None:
            raise GuestNotRunning(
                f"guest {self.name!r} is stopped: start it with 'hvbsd sim guest start {self.name}'"
            )
        pid = self.pid
        if pid is None:
            raise HolderDied(
                f"guest {self.name!r}: its holder process (pid {record.get('pid')}) has died; "
                f"'hvbsd sim guest destroy {self.name}' cleans it up"
            )
        return pid

    # -- lifecycle ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _lifecycle_lock(self) -> Iterator[None]:
        """Serialises create/start/stop/destroy of guests in one root."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)

    @classmethod
    def create(
        cls,
        name: str,
        root: Optional[PathLike] = None,
        *,
        preset: str = "ufs",
        nics: int = 1,
        start: bool = True,
        release: Union[str, Release, None] = None,
    ) -> Guest:
        """Create the guest's state (base files, commands, kernel) and start it.

        ``release`` is a supported FreeBSD release (``"14.5"`` or an
        ``hvbsd.releases.Release``; ``hvbsd.releases.default()`` when None): its
        kernel answers kern.osrelease, kern.osreldate and kern.version, and its
        stock files (``/etc/devd.conf``...) are that release's.
        """
        guest = cls(name, root)
        chosen = check_release(release)
        if preset not in PRESETS:
            raise InvalidInput(f"preset {preset!r}: must be one of {', '.join(PRESETS)}")
        if isinstance(nics, bool) or not isinstance(nics, int) or not 0 <= nics <= MAX_NICS:
            raise InvalidInput(f"nics {nics!r}: must be an integer from 0 to {MAX_NICS}")
        require_namespaces()
        with guest._lifecycle_lock():
            if guest.state_dir.exists():
                raise GuestExists(f"guest {name!r} already exists in {guest.root}")
            guest.state_dir.mkdir(parents=True)
            try:
                guest._populate(preset, nics, chosen)
            except BaseException:
                _remove_tree(guest.state_dir)
                raise
        if start:
            try:
                guest.start()
            except BaseException:
                with guest._lifecycle_lock():
                    _remove_tree(guest.state_dir)
                raise
        return guest

    def _populate(self, preset: str, nics: int, release: Release) -> None:
        from hvbsd.sim import freebsd
        from hvbsd.sim.kernel import Kernel

        state = self.state_dir
        for sub in ("tmp", "dev", "rootfs", "empty"):
            (state / sub).mkdir()
        os.chmod(state / "tmp", 0o1777)
        _make_dev(state / "dev")
        kernel = Kernel.create(
            self.kernel_dir, hostname=self.name, preset=preset, nics=nics, release=release
        )
        bash = freebsd.host_bash()
        if bash is None:
            raise GuestError(
                f"no bash at {' or '.join(freebsd.BASH_PATHS)}: the guest's /bin/sh is bash "
                "made to behave as FreeBSD's sh (install the bash package)"
            )
        layout = _Layout(state, _overlaid_names([*freebsd.COMMANDS, freebsd.SH_PATH]))
        for top in layout.overlaid:
            (state / "upper" / top).mkdir(parents=True)
            (state / "work" / top).mkdir(parents=True)
        # /var/run is a symlink to /run on many Linux hosts; the guest's is its own.
        layout.directory("/var/run")
        (state / "upper" / KERNEL_MOUNTPOINT.lstrip("/")).mkdir(parents=True)
        for directory in freebsd.BASE_DIRECTORIES:
            layout.directory(directory)
        for guest_path, content, mode in freebsd.base_files(release.stock):
            layout.write(guest_path, content, mode)
        for guest_path in sorted(freebsd.COMMANDS):
            command = os.path.basename(guest_path)
            wrapper = (
                "#!/bin/sh\n"
                f"# FreeBSD's {command}, simulated by hvbsd.\n"
                f'exec /usr/local/bin/python3 -m hvbsd.sim.freebsd {command} "$@"\n'
            )
            layout.write(guest_path, wrapper.encode(), 0o755)
        # /bin/sh: FreeBSD's sh on bash.  On a merged-/usr host it lands in the
        # /usr overlay (over the host's sh -> dash); a real /bin is overlaid.
        layout.write(freebsd.SH_PATH, freebsd.sh_wrapper(bash), 0o755)
        _install_python(layout, kernel.snapshot().sysctls)
        layout.write("/etc/group", group_file(_read_host_group()), 0o644)
        _atomic_write(
            self._config_path,
            json.dumps(
                {
                    "name": self.name,
                    "preset": preset,
                    "nics": nics,
                    "release": release.name,
                    "overlaid": layout.overlaid,
                },
                indent=1,
            ).encode(),
        )

    def start(self) -> None:
        """Start the holder: mount the guest's file systems, boot its kernel state."""
        require_namespaces()
        with self._lifecycle_lock():
            self._require_exists()
            if self.pid is not None:
                raise GuestError(f"guest {self.name!r} is already running (pid {self.pid})")
            self._holder_path.unlink(missing_ok=True)
            config = self.config()
            state = self.state_dir
            from hvbsd.sim.kernel import Kernel

            Kernel(self.kernel_dir).boot(state / "upper" / "boot")
            spec = {
                "hostname": self.name,
                "rootfs": str(state / "rootfs"),
                "overlays": {
                    top: {
                        "lower": str(state / "empty")
                        if top in PRIVATE_OVERLAYS
                        else _lower_for(top, state / "empty"),
                        "upper": str(state / "upper" / top),
                        "work": str(state / "work" / top),
                    }
                    for top in config["overlaid"]
                },
                "tmp": str(state / "tmp"),
                "dev": str(state / "dev"),
                "kernel": str(self.kernel_dir),
                "kernel_mountpoint": KERNEL_MOUNTPOINT,
                "read_only_binds": _read_only_binds(
                    [top for top in config["overlaid"] if top not in PRIVATE_OVERLAYS]
                ),
            }
            spec_path = state / "holder-spec.json"
            _atomic_write(spec_path, json.dumps(spec, indent=1).encode())
            try:
                launched = subprocess.run(
                    [sys.executable, "-m", "hvbsd.sim.namespace", "hold", str(spec_path)],
                    capture_output=True,
                    text=True,
                    timeout=START_TIMEOUT,
                    check=False,
                    cwd="/",
                )
            except subprocess.TimeoutExpired:
                raise GuestError(
                    f"guest {self.name!r}: holder not ready within {START_TIMEOUT:.0f} s"
                ) from None
            if launched.returncode != 0:
                detail = launched.stderr.strip().splitlines() or ["unknown error"]
                raise GuestError(f"guest {self.name!r}: cannot start: {detail[-1]}")
            record = json.loads(launched.stdout)
            record["pid_namespace"] = namespace.pid_namespace_of(record["pid"])
            _atomic_write(self._holder_path, json.dumps(record).encode())
        from hvbsd.sim.hyperv_nic import boot_network

        boot_network(self)  # rc's netif, for a static lagg from rc.conf

    def boot_devd(self) -> list[Any]:
        """rc's devd at boot, after netif: start it, then what it reads first.

        FreeBSD's rc runs rc.d/devd after netif (its ``REQUIRE: netif``), and
        the kernel queues devctl events until devd reads them (sys/kern/
        subr_bus.c devctl_queue_data_f queues whether or not /dev/devctl is
        open).  So the IFNET LINK_UP that each interface's link coming up
        sent during the boot (sys/net/if.c do_link_state_change ->
        devctl_notify) reaches devd's rules once it starts, and the stock
        ``service dhclient quietstart $subsystem`` (or hvbsd's rule) gets
        DHCP interfaces their lease.  ``/etc/rc.d/devd start`` runs first
        (a disabled or unparsable devd reads nothing); then LINK_UP is
        dispatched for each interface whose link is up, in the kernel's
        order.  Returns the dispatch records; all is logged to
        ``<state>/boot.log``.
        """
        from hvbsd.sim.devd_guest import dispatch
        from hvbsd.sim.kernel import Kernel

        marker = "/var/run/devd.sim"
        started = self.exec(
            ["/bin/sh", "-c", f"rm -f {marker}; /etc/rc.d/devd start"], text=True, timeout=60
        )
        records: list[Any] = []
        lines = [f"devd at boot: exit {started.returncode}\n{started.stdout}{started.stderr}"]
        if self.path(marker).exists():
            state = Kernel(self.kernel_dir).snapshot()
            for interface in state.interfaces:
                if interface.link == "unknown" or state.link_of(interface) != "up":
                    continue
                record = dispatch(self, f"!system=IFNET subsystem={interface.name} type=LINK_UP")
                records.append(record)
                lines.append(f"devd at boot: {record.describe()}\n")
        with open(self.state_dir / "boot.log", "a", encoding="utf-8") as log:
            log.write("".join(lines))
        return records

    def stop(self) -> None:
        """Stop every process of the guest; its file systems are kept for the next start."""
        with self._lifecycle_lock():
            self._require_exists()
            record = self._holder_record()
            if record is None:
                raise GuestNotRunning(f"guest {self.name!r} is already stopped")
            self._stop_simulated_host()
            self._kill_holder(record)
            self._holder_path.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Kill everything in the guest and remove its state: nothing is left behind."""
        with self._lifecycle_lock():
            if not self.state_dir.exists():
                raise UnknownGuest(f"guest {self.name!r}: no such guest in {self.root}")
            record = self._holder_record()
            self._stop_simulated_host()
            if record is not None:
                self._kill_holder(record)
            _remove_tree(self.state_dir)

    def _stop_simulated_host(self) -> None:
        """The guest's simulated Hyper-V host (hvbsd.sim.host) goes with the guest."""
        from hvbsd.sim import host

        host.stop(self, graceful=False, timeout=5.0)

    def _kill_holder(self, record: dict[str, Any]) -> None:
        pid = int(record.get("pid", 0))
        ns = record.get("pid_namespace")
        alive = pid > 0 and namespace.process_starttime(pid) == record.get("starttime")
        if alive:
            # SIGKILL of PID 1 makes the kernel kill every process of its namespace.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            left = namespace.processes_in_namespace(ns) if ns else []
            if alive and namespace.process_starttime(pid) == record.get("starttime"):
                left.append(pid)
            if not left:
                return
            if time.monotonic() > deadline:
                raise GuestError(f"guest {self.name!r}: processes {left} did not exit")
            time.sleep(0.01)

    # -- running commands ------------------------------------------------------------------

    def command(self, argv: Sequence[str]) -> list[str]:
        """The host argv that runs ``argv`` inside the running guest."""
        if not argv:
            raise InvalidInput("command: empty argument list")
        pid = self.require_running()
        return [*namespace.enter_command(pid), *argv]

    def popen(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        **options: Any,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the guest; ``options`` go to subprocess.Popen."""
        environment = dict(GUEST_ENVIRONMENT if env is None else env)
        return subprocess.Popen(self.command(argv), env=environment, **options)

    def exec(
        self,
        argv: Sequence[str],
        input: Optional[Union[bytes, str]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        *,
        text: bool = False,
        check: bool = False,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the guest as root and collect its output.

        The environment is FreeBSD's root login (``GUEST_ENVIRONMENT``) unless
        ``env`` is given.  On timeout every process the command started is
        killed (they share its process group) and TimeoutExpired is raised.
        """
        process = self.popen(
            argv,
            env=env,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=text,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        result = subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)
        if check:
            result.check_returncode()
        return result

    # -- files ---------------------------------------------------------------------------

    def path(self, guest_path: str) -> Path:
        """Host path through which a file of the guest can be read.

        While the guest runs this goes through the holder's root, so it sees
        exactly what processes inside see; when stopped, the layers are looked
        up the way overlayfs would (upper first).
        """
        if not guest_path.startswith("/"):
            raise InvalidInput(f"guest path {guest_path!r}: must be absolute")
        self._require_exists()
        pid = self.pid
        if pid is not None:
            root = Path(f"/proc/{pid}/root")

            def locate(inside: str) -> Path:
                return root / inside.lstrip("/")
        else:
            locate = _Layout(self.state_dir, self.config()["overlaid"]).lookup
        return locate(_resolve_in_guest(guest_path, locate))



MAX_SYMLINKS = 40  # Linux's limit on links followed in one lookup


def _resolve_in_guest(guest_path: str, locate: Callable[[str], Path]) -> str:
    """``guest_path`` with every symlink resolved the way the guest sees it.

    A host process walking ``/proc/PID/root/...`` (or the layers on disk)
    would resolve an absolute link, or enough ``..``, against the HOST's root:
    a link the guest left would lead a host-side reader to the host's files.
    So links are followed here, inside the guest's root, and the path returned
    holds none (a guest process swapping a part for a link in between is not
    guarded against).
    """
    pending = [part for part in guest_path.split("/") if part not in ("", ".")]
    pending.reverse()
    resolved: list[str] = []
    followed = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/" + "/".join([*resolved, part])
        try:
            info = os.lstat(locate(candidate))
        except OSError:
            resolved.append(part)  # absent: the rest is looked up as it is
            continue
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise GuestError(f"{guest_path}: too many levels of symbolic links in the guest")
        target = os.readlink(locate(candidate))
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return "/" + "/".join(resolved)


def list_guests(root: Optional[PathLike] = None) -> list[Guest]:
    """Every guest in ``root`` (default: the default state root), by name."""
    root_path = Path(root) if root is not None else default_root()
    if not root_path.is_dir():
        return []
    return [
        Guest(entry.name, root_path)
        for entry in sorted(root_path.iterdir())
        if _NAME.fullmatch(entry.name) and (entry / "guest.json").is_file()
    ]


# -- helpers ---------------------------------------------------------------------------------


class _Layout:
    """Where a guest path lives on the host, given the guest's state directory."""

    def __init__(self, state: Path, overlaid: Sequence[str]) -> None:
        self.state = state
        self.overlaid = list(overlaid)

    def _split(self, guest_path: str) -> tuple[str, str]:
        parts = os.path.normpath(guest_path).lstrip("/").split("/", 1)
        top, rest = parts[0], parts[1] if len(parts) > 1 else ""
        host_top = "/" + top
        if os.path.islink(host_top) and top not in self.overlaid:
            # Merged /usr: /sbin -> usr/sbin lands in the /usr overlay.
            target = os.path.normpath(os.path.join("/", os.readlink(host_top)))
            return self._split(os.path.join(target, rest))
        return top, rest

    def upper(self, guest_path: str) -> Path:
        if guest_path == KERNEL_MOUNTPOINT or guest_path.startswith(KERNEL_MOUNTPOINT + "/"):
            return self.state / "kernel" / guest_path[len(KERNEL_MOUNTPOINT) :].lstrip("/")
        top, rest = self._split(guest_path)
        if top in ("tmp", "dev"):
            return self.state / top / rest
        if top not in self.overlaid:
            raise GuestError(f"{guest_path}: not on a file system the guest owns")
        return self.state / "upper" / top / rest

    def lookup(self, guest_path: str) -> Path:
        try:
            upper = self.upper(guest_path)
        except GuestError:
            top = guest_path.lstrip("/").split("/", 1)[0]
            if top in namespace.SHARED_TOPS:
                return Path(guest_path)  # bound read-only from the host
            # Not the guest's and not shown to it: an empty directory of its root.
            return self.state / "rootfs" / guest_path.lstrip("/")
        if os.path.lexists(upper) or not str(upper).startswith(str(self.state / "upper")):
            return upper
        top, rest = self._split(guest_path)
        if top in PRIVATE_OVERLAYS:
            return upper  # starts empty: nothing of the host's below it
        return Path("/" + top) / rest

    def directory(self, guest_path: str) -> None:
        self.upper(guest_path).mkdir(parents=True, exist_ok=True)

    def write(self, guest_path: str, content: bytes, mode: int) -> None:
        target = self.upper(guest_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, content, mode)


def _overlaid_names(command_paths: Sequence[str]) -> list[str]:
    """The overlay set: the usual trees plus any real top-level directory a command needs."""
    names = list(OVERLAID)
    for path in command_paths:
        top = path.lstrip("/").split("/", 1)[0]
        if top not in names and not os.path.islink("/" + top):
            names.append(top)
    return names


def _lower_for(top: str, empty: Path) -> str:
    host = "/" + top
    if os.path.isdir(host) and not os.path.islink(host) and os.access(host, os.R_OK | os.X_OK):
        return host
    return str(empty)  # absent or unreadable for this user: the guest starts it empty


def _python_site_paths() -> list[str]:
    """Directories the controller's Python imports from, beyond its standard library."""
    paths: list[str] = []
    candidates = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    stdlib_roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    # sys.path[0] is the running script's directory (or the cwd): not a library path.
    candidates += [
        entry
        for entry in sys.path[1:]
        if entry and not any(os.path.realpath(entry).startswith(r + "/lib") for r in stdlib_roots)
    ]
    for entry in candidates:
        real = os.path.realpath(entry)
        if os.path.isdir(real) and real not in paths:
            paths.append(real)
    return paths


def _loaded_library_directories() -> list[str]:
    """Directories of the shared objects this interpreter has mapped (libpython, libc, ...)."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/") and ".so" in fields[5]:
                    directory = os.path.dirname(fields[5].rstrip("\n"))
                    if directory not in found:
                        found.append(directory)
    except OSError:
        pass
    return found


def _read_only_binds(visible_tops: Sequence[str]) -> list[str]:
    """Host paths the guest's Python needs, bound read-only at the same path.

    The interpreter's prefixes, its site directories and ``sys.path`` entries,
    the directory the hvbsd package is imported from and the directories of
    the shared objects the interpreter loaded, except what the guest already
    sees: trees whose top-level directory it shows (an overlay over the host's
    own, or a read-only shared one).
    """
    import hvbsd

    needed = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    needed += _python_site_paths()
    needed.append(os.path.dirname(os.path.dirname(os.path.realpath(hvbsd.__file__))))
    needed += [os.path.realpath(d) for d in _loaded_library_directories()]
    shown = set(visible_tops) | set(namespace.SHARED_TOPS)
    binds: list[str] = []
    for path in sorted(set(needed)):
        top = path.lstrip("/").split("/", 1)[0]
        if not top or top in shown or top in ("proc", "dev") or path == "/tmp":
            continue  # "/tmp" itself would hide the guest's own
        if any(path == kept or path.startswith(kept + "/") for kept in binds):
            continue
        binds.append(path)
    return binds


def _sees_system_site_packages() -> str:
    """"true" when the controller's Python imports from the base interpreter's
    site-packages too: so the guest's does exactly when the controller's does
    (a venv's hvbsd must not lose to another copy installed system-wide)."""
    if sys.prefix == sys.base_prefix:
        return "true"
    try:
        config = Path(sys.prefix, "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return "true"
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "include-system-site-packages":
            return "true" if value.strip().lower() == "true" else "false"
    return "false"


def _install_python(layout: _Layout, sysctls: Mapping[str, Any]) -> None:
    """``/usr/local/bin/python3``: the controller's interpreter, telling FreeBSD's uname.

    A symlink plus ``/usr/local/pyvenv.cfg`` makes it a venv with prefix
    /usr/local (FreeBSD's layout); its sitecustomize adds the controller's
    packages and patches ``os.uname``.  The process keeps the argv it was
    started with, as on FreeBSD, so rc.subr's interpreter matching works.
    """
    interpreter = os.path.realpath(sys.executable)
    short = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for link in ("python3", short):
        target = layout.upper(f"/usr/local/bin/{link}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(interpreter)
    version = ".".join(str(part) for part in sys.version_info[:3])
    layout.write(
        "/usr/local/pyvenv.cfg",
        (
            f"home = {os.path.dirname(interpreter)}\n"
            f"include-system-site-packages = {_sees_system_site_packages()}\n"
            f"version = {version}\n"
        ).encode(),
        0o644,
    )

    def value(name: str, default: str) -> str:
        oid = sysctls.get(name)
        found = getattr(oid, "value", None)
        return str(found).strip() if found not in (None, "") else default

    version = value("kern.version", "")
    uname = {
        "release": value("kern.osrelease", ""),
        "version": version.splitlines()[0] if version else "",
        "machine": value("hw.machine", "amd64"),
    }
    sitecustomize = f'''"""Make the guest's Python report FreeBSD (from hvbsd sim guest create)."""
import os
import site
import sys

for _directory in {_python_site_paths()!r}:
    if _directory not in sys.path:
        site.addsitedir(_directory)

_UNAME = {uname!r}
_linux_uname = os.uname


def _freebsd_uname():
    node = _linux_uname().nodename
    return os.uname_result(
        ("FreeBSD", node, _UNAME["release"], _UNAME["version"], _UNAME["machine"])
    )


os.uname = _freebsd_uname
'''
    site_packages = f"/usr/local/lib/{short}/site-packages"
    layout.write(f"{site_packages}/sitecustomize.py", sitecustomize.encode(), 0o644)


# FreeBSD's etc/group: gid 0 is wheel (root's group); rc.d/dhclient's
# "install -d -o root -g wheel" and other rc scripts name it.
WHEEL_GROUP = "wheel:*:0:root\n"


def _read_host_group() -> str:
    try:
        with open("/etc/group", encoding="utf-8", errors="surrogateescape") as stream:
            return stream.read(1 << 20)
    except OSError:
        return ""


def group_file(host_group: str) -> bytes:
    """The guest's /etc/group: the host's groups (its Linux tools look them up) plus wheel."""
    names = {line.split(":", 1)[0] for line in host_group.splitlines()}
    text = host_group if not host_group or host_group.endswith("\n") else host_group + "\n"
    if "wheel" not in names:
        text += WHEEL_GROUP
    return text.encode("utf-8", "surrogateescape")


def _make_dev(dev: Path) -> None:
    for node in namespace.DEVICE_NODES:
        (dev / node).touch(mode=0o666)
    for link, target in namespace.DEVICE_LINKS.items():
        (dev / link).symlink_to(target)
    (dev / "shm").mkdir(mode=0o1777)
    os.chmod(dev / "shm", 0o1777)


def _atomic_write(path: Path, content: bytes, mode: int = 0o644) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _remove_tree(path: Path) -> None:
    """rmtree that first opens up directories left unreadable (overlayfs's work/work is 000)."""

    def open_up(directory: str) -> None:
        with contextlib.suppress(OSError):
            mode = os.lstat(directory).st_mode
            if mode & stat.S_IRWXU != stat.S_IRWXU:
                os.chmod(directory, mode | stat.S_IRWXU)
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    open_up(entry.path)

    if not path.exists():
        return
    open_up(str(path))
    shutil.rmtree(path)
