"""What CHECK, FREEZE and THAW do.

FREEZE, in this order: freeze hooks (lexical order), ``sync``, ``zpool sync``
for the ZFS pools, then suspend every writable UFS filesystem, deepest mount
point first. Any failure undoes everything done so far in reverse order and
answers FAIL. THAW resumes the filesystems (shallowest first) and then thaws
the hooks in reverse order. CHECK succeeds exactly when a FREEZE would get
past its planning step.

Mounts are sorted into:

- suspend: writable UFS;
- skipped: read-only mounts, memory and pseudo filesystems (devfs, tmpfs,
  nullfs views of other mounts, ...), and mount points matching an
  ``--exclude`` glob;
- ZFS: ``--zfs sync`` (``zpool sync`` of their pools), ``veto`` or ``ignore``;
- anything else writable (NFS, msdosfs, ext2fs, fusefs, ...):
  ``--other-fs sync`` (``sync``), ``veto`` or ``ignore``.

With an app channel, the hooks belong to it: the kernel asks the app channel
before the filesystem channel on CHECK and FREEZE, and after it on THAW.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hvbsd.vss import simwire
from hvbsd.vss.hooks import HookDirError, HookResult, Hooks
from hvbsd.vss.log import Log, clean
from hvbsd.vss.mounts import Mount
from hvbsd.vss.platform import Platform, PlatformError, Suspension

CHOICES = ("sync", "veto", "ignore")

#: filesystems with nothing of their own on disk: views, memory, kernel state
PSEUDO_FSTYPES = frozenset({
    "devfs", "fdescfs", "procfs", "linprocfs", "linsysfs", "mqueuefs", "autofs",
    "tmpfs", "nullfs", "unionfs", "tarfs", "p9fs"})

#: characters of a hook's output that go into its log line
LOGGED_OUTPUT = 2000

SCOPE_FS = "fs"
SCOPE_APP = "app"


@dataclass(frozen=True)
class Settings:
    zfs: str = "sync"
    other_fs: str = "sync"
    excludes: Tuple[str, ...] = ()
    #: True when no app channel is served: the fs channel runs the hooks too
    hooks_on_fs: bool = True

    def __post_init__(self) -> None:
        for name, value in (("zfs", self.zfs), ("other_fs", self.other_fs)):
            if value not in CHOICES:
                raise ValueError(f"{name} policy {value!r} is not one of {', '.join(CHOICES)}")


@dataclass
class Plan:
    suspend: List[Mount] = field(default_factory=list)
    pools: List[str] = field(default_factory=list)
    sync_others: List[Mount] = field(default_factory=list)
    skipped: List[Tuple[Mount, str]] = field(default_factory=list)
    vetoes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.suspend:
            parts.append("suspend " + ", ".join(m.mount_on for m in self.suspend))
        if self.pools:
            parts.append("zpool sync " + " ".join(self.pools))
        if self.sync_others:
            parts.append("sync " + ", ".join(m.mount_on for m in self.sync_others))
        return "; ".join(parts) or "nothing to freeze"


def make_plan(mounts: Sequence[Mount], settings: Settings) -> Plan:
    plan = Plan()
    seen = set()
    for mount in mounts:
        if mount.fsid in seen and mount.fstype != "zfs":
            plan.skipped.append((mount, "mounted twice"))
            continue
        seen.add(mount.fsid)
        excluded = next((glob for glob in settings.excludes
                         if fnmatch.fnmatchcase(mount.mount_on, glob)), None)
        if mount.read_only:
            plan.skipped.append((mount, "read-only"))
        elif mount.fstype in PSEUDO_FSTYPES:
            plan.skipped.append((mount, f"{mount.fstype} has no data of its own on disk"))
        elif excluded is not None:
            plan.skipped.append((mount, f"excluded by {excluded}"))
        elif mount.fstype == "ufs":
            plan.suspend.append(mount)
        elif mount.fstype == "zfs":
            _apply(plan, mount, settings.zfs, "--zfs")
        else:
            _apply(plan, mount, settings.other_fs, "--other-fs")
    # deepest first, so a filesystem is suspended before the one it is mounted on
    order = {id(m): index for index, m in enumerate(plan.suspend)}
    plan.suspend.sort(key=lambda m: (-m.depth, -order[id(m)]))
    return plan


def _apply(plan: Plan, mount: Mount, choice: str, option: str) -> None:
    if choice == "veto":
        plan.vetoes.append(f"{mount.mount_on} is writable {mount.fstype} ({option} veto)")
    elif choice == "ignore":
        plan.skipped.append((mount, f"{mount.fstype} ignored ({option} ignore)"))
    elif mount.fstype == "zfs":
        pool = simwire.pool_of(mount)
        if pool not in plan.pools:
            plan.pools.append(pool)
    else:
        plan.sync_others.append(mount)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


class Deadline:
    """The time a request must be answered by (time.monotonic)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def left(self) -> float:
        return self.at - time.monotonic()

    @property
    def spent(self) -> bool:
        return self.left() <= 0


def _left(deadline: Optional[Deadline]) -> Optional[float]:
    return None if deadline is None else deadline.left()


StateCallback = Callable[[Dict[str, object]], None]


class Policy:
    """The daemon's frozen/thawed state and the three operations."""

    def __init__(self, platform: Platform, hooks: Optional[Hooks], settings: Settings,
                 log: Log, on_state: Optional[StateCallback] = None,
                 defer_hook_thaws: bool = False) -> None:
        self.platform = platform
        self.hooks = hooks
        self.settings = settings
        self.log = log
        self.on_state = on_state
        #: True (the daemon): hook thaws that do not fit a request's deadline run
        #: after its answer, in ``finish``
        self.defer_hook_thaws = defer_hook_thaws
        self.suspensions: List[Suspension] = []
        self.frozen_hooks: List[str] = []
        #: the hook process under way: name, action, pid, wall-clock deadline
        self.running: Optional[Dict[str, object]] = None
        self.frozen_at: Optional[float] = None
        self.deferred: List[str] = []  # reasons the hooks still wait for their thaw
        self._modules_before: frozenset = frozenset()
        self._skips_logged: set = set()

    # state

    @property
    def filesystems_frozen(self) -> bool:
        return bool(self.suspensions)

    @property
    def anything_frozen(self) -> bool:
        return bool(self.suspensions or self.frozen_hooks)

    def snapshot(self, planned: Sequence[Mount] = ()) -> Dict[str, object]:
        filesystems = [s.mount.mount_on for s in self.suspensions]
        filesystems += [m.mount_on for m in planned if m.mount_on not in filesystems]
        frozen = bool(filesystems or self.frozen_hooks)
        return {"frozen": frozen, "filesystems": filesystems, "hooks": list(self.frozen_hooks),
                "running": dict(self.running) if self.running is not None else None}

    def _persist(self, planned: Sequence[Mount] = ()) -> None:
        # only ever called while no filesystem is suspended
        if self.on_state is not None:
            self.on_state(self.snapshot(planned))

    def _mounts(self) -> List[Mount]:
        mounts = self.platform.list_mounts()
        for reason in getattr(self.platform, "skipped", []):
            if reason not in self._skips_logged and len(self._skips_logged) < 100:
                self._skips_logged.add(reason)
                self.log.warning(f"mount table: {reason}")
        return mounts

    def plan(self) -> Plan:
        """What a FREEZE would do now (PlatformError if the mount table cannot be read)."""
        return make_plan(self._mounts(), self.settings)

    def _runs_hooks(self, scope: str) -> bool:
        return self.hooks is not None and (scope == SCOPE_APP or self.settings.hooks_on_fs)

    # operations

    def check(self, scope: str = SCOPE_FS) -> Outcome:
        reasons = []
        summary = "hooks only"
        if scope == SCOPE_FS:
            try:
                plan = self.plan()
            except PlatformError as exc:
                return Outcome(False, f"cannot read the mount table: {exc}")
            reasons.extend(plan.vetoes)
            summary = plan.summary()
        hook_names: List[str] = []
        if self._runs_hooks(scope):
            try:
                hook_names = self.hooks.discover()  # type: ignore[union-attr]
            except HookDirError as exc:
                reasons.append(str(exc))
        if reasons:
            return Outcome(False, "would veto: " + "; ".join(reasons))
        if hook_names:
            summary += "; hooks " + ", ".join(hook_names)
        return Outcome(True, f"a freeze would succeed: {summary}")

    def freeze(self, scope: str = SCOPE_FS, deadline: Optional[Deadline] = None) -> Outcome:
        """Freeze, answering by ``deadline``: each hook, ``zpool sync`` and the
        suspension step get at most the time left, and when it is spent
        everything is undone and the FREEZE fails instead of suspending."""
        self.finish()
        if scope == SCOPE_APP and self.suspensions:
            # a new transaction while an old one holds the filesystems: the journal
            # cannot be written while they are suspended, so end the old one first
            self.log.warning("app FREEZE while filesystems are suspended: thawing first")
            self.thaw_everything("app FREEZE while frozen")
        elif self._holds(scope):
            self.log.warning("FREEZE while already frozen: thawing the earlier freeze first")
            self.thaw(scope)
            self.finish()
        plan = Plan()
        if scope == SCOPE_FS:
            try:
                plan = self.plan()
            except PlatformError as exc:
                return Outcome(False, f"cannot read the mount table: {exc}")
            if plan.vetoes:
                return Outcome(False, "vetoed: " + "; ".join(plan.vetoes))
        hook_names: List[str] = []
        if self._runs_hooks(scope):
            try:
                hook_names = self.hooks.discover()  # type: ignore[union-attr]
            except HookDirError as exc:
                return Outcome(False, str(exc))
        if self.frozen_at is None:
            self.frozen_at = time.monotonic()
        failure = self._freeze_hooks(hook_names, deadline)
        if failure is None and scope == SCOPE_FS:
            failure = self._freeze_filesystems(plan, deadline)
        if failure is not None:
            self.log.error(f"FREEZE failed: {failure}; rolling back")
            undo: List[str] = []
            if self._runs_hooks(scope) and self.frozen_hooks:
                if self.defer_hook_thaws:
                    self.deferred.append("FREEZE failed")
                    undo.append(f"hooks {', '.join(reversed(self.frozen_hooks))} are thawed"
                                " after the answer")
                else:
                    undo = self._thaw_hooks()
            self._settle()
            self._persist()
            return Outcome(False, "; ".join([failure, *undo]))
        done = plan.summary() if scope == SCOPE_FS else "hooks"
        if hook_names and scope == SCOPE_FS:
            done += "; hooks " + ", ".join(hook_names)
        return Outcome(True, f"frozen: {done}")

    def thaw(self, scope: str = SCOPE_FS, reason: str = "THAW",
             deadline: Optional[Deadline] = None) -> Outcome:
        """Resume the filesystems, then thaw the hooks; a hook that might not
        finish by ``deadline`` is thawed after the answer instead (``finish``)."""
        if not self._holds(scope):
            return Outcome(True, "nothing was frozen")
        problems = self._thaw_filesystems() if scope == SCOPE_FS else []
        later = ""
        if self._runs_hooks(scope):
            problems += self._thaw_hooks(deadline)
            if self.frozen_hooks:
                self.deferred.append(reason)
                later = (f"; hooks {', '.join(reversed(self.frozen_hooks))} are thawed after"
                         " the answer (not enough time left)")
        self._settle()
        self._persist()
        if problems:
            return Outcome(False, f"{reason}: " + "; ".join(problems) + later)
        return Outcome(True, f"{reason}: thawed{later}")

    def finish(self) -> Optional[Outcome]:
        """Thaw the hooks a request left for after its answer; None if there were none."""
        if not self.deferred:
            return None
        reason = " and ".join(dict.fromkeys(self.deferred))
        self.deferred = []
        problems = self._thaw_hooks()
        self._settle()
        self._persist()
        if problems:
            return Outcome(False, f"after {reason}: " + "; ".join(problems))
        return Outcome(True, f"after {reason}: hooks thawed")

    def thaw_everything(self, reason: str) -> Outcome:
        """Watchdog and shutdown: filesystems first, then every frozen hook."""
        self.deferred = []
        if not self.anything_frozen:
            return Outcome(True, "nothing was frozen")
        problems = self._thaw_filesystems() + self._thaw_hooks()
        self._settle()
        self._persist()
        if problems:
            return Outcome(False, f"{reason}: " + "; ".join(problems))
        return Outcome(True, f"{reason}: thawed")

    # steps

    def _holds(self, scope: str) -> bool:
        if scope == SCOPE_FS and self.suspensions:
            return True
        return self._runs_hooks(scope) and bool(self.frozen_hooks)

    def _settle(self) -> None:
        if not self.anything_frozen:
            self.frozen_at = None

    def _run_hook(self, name: str, action: str, timeout: Optional[float]) -> HookResult:
        limit = self.hooks.timeout if timeout is None else min(  # type: ignore[union-attr]
            self.hooks.timeout, max(0.0, timeout))  # type: ignore[union-attr]
        entry: Dict[str, object] = {"name": name, "action": action, "pid": None,
                                    "deadline": round(time.time() + limit, 3)}

        def started(pid: int) -> None:
            entry["pid"] = pid
            self._persist()  # the journal names the process, for a restart to kill

        self.running = entry
        try:
            return self.hooks.run(name, action, timeout=limit,  # type: ignore[union-attr]
                                  on_start=started)
        finally:
            self.running = None

    def _freeze_hooks(self, names: Sequence[str],
                      deadline: Optional[Deadline] = None) -> Optional[str]:
        for name in names:
            left = _left(deadline)
            if left is not None and left <= 0:
                return f"request budget spent before hook {name} could freeze"
            # journal first: a hook listed before its freeze starts gets thaw after any kill
            self.frozen_hooks.append(name)
            self._persist()
            result = self._run_hook(name, "freeze", left)
            # it ran freeze, so it gets thaw, even when it failed
            self._log_hook(result)
            if not result.ok:
                return result.describe()
        return None

    def _thaw_hooks(self, deadline: Optional[Deadline] = None) -> List[str]:
        """Thaw in reverse order; with a deadline, stop before a hook that might not
        finish in time (it stays frozen_hooks, for ``finish``)."""
        problems = []
        while self.frozen_hooks:
            name = self.frozen_hooks[-1]
            left = _left(deadline)
            if left is not None and left < self.hooks.timeout:  # type: ignore[union-attr]
                break
            result = self._run_hook(name, "thaw", None)
            # leaves the journal only once its thaw has finished
            self.frozen_hooks.pop()
            self._persist()
            self._log_hook(result)
            if not result.ok:
                problems.append(result.describe())
        return problems

    def _log_hook(self, result: HookResult) -> None:
        text = result.describe()
        if result.output:
            text += f"; output: {clean(result.output, LOGGED_OUTPUT)}"
        if result.discarded:
            text += f"; {result.discarded} more bytes of output discarded"
        if result.ok:
            self.log.info(text)
        else:
            self.log.error(text)

    def _freeze_filesystems(self, plan: Plan,
                            deadline: Optional[Deadline] = None) -> Optional[str]:
        try:
            if plan.suspend or plan.sync_others:
                self.platform.sync(_left(deadline))
            if plan.pools:
                left = _left(deadline)
                if left is not None and left <= 0:
                    return "request budget spent before zpool sync"
                self.platform.zpool_sync(plan.pools, left)
        except PlatformError as exc:
            return f"{exc} ({exc.errno_name})"
        if not plan.suspend:
            return None
        # the last write before anything is suspended: says what a restart must undo
        self._persist(plan.suspend)
        self._modules_before = frozenset(sys.modules)
        self.log.hold()
        for mount in plan.suspend:
            left = _left(deadline)
            if left is not None and left <= 0:
                problems = self._thaw_filesystems()
                return "; ".join([f"request budget spent before suspending {mount.mount_on};"
                                  " resumed what was suspended", *problems])
            try:
                self.suspensions.append(self.platform.suspend(mount, left))
            except PlatformError as exc:
                problems = self._thaw_filesystems()
                hint = self._edeadlk_hint(mount) if exc.errno_name == "EDEADLK" else ""
                return "; ".join([f"{exc} ({exc.errno_name}){hint}", *problems])
            self.log.info(f"suspended {mount.mount_on} (fsid {mount.fsid_text})")
        if deadline is not None and deadline.spent:
            # too late to answer success in time: the host would be told FAIL by the
            # driver's timer while we stayed suspended
            problems = self._thaw_filesystems()
            return "; ".join(["request budget spent while suspending; resumed everything",
                              *problems])
        return None

    def writable_files_on(self, mounts: Sequence[Mount]) -> List[Tuple[int, str, Mount]]:
        """This process's descriptors open for writing on ``mounts``: UFSSUSPEND
        refuses such a mount with EDEADLK (ffs_suspend.c, ffs_susp_ioctl:
        descrip_check_write_mp)."""
        found = []
        for fd in open_writable_files():
            mount = self.platform.fd_mount(fd, mounts)
            if mount is not None:
                found.append((fd, _fd_path(fd), mount))
        return found

    def _edeadlk_hint(self, mount: Mount) -> str:
        held = [f"fd {fd} {path}" for fd, path, m in self.writable_files_on([mount])]
        if not held:
            return ""
        return (f" (hvbsd_vssd holds {', '.join(held)} open for writing on"
                f" {mount.mount_on}: log elsewhere or --exclude it)")

    def _thaw_filesystems(self) -> List[str]:
        problems = []
        while self.suspensions:
            suspension = self.suspensions.pop()
            try:
                suspension.resume()
                self.log.info(f"resumed {suspension.mount.mount_on}")
            except PlatformError as exc:
                problems.append(f"{exc} ({exc.errno_name})")
        if self.log.holding:
            self.log.release()
            late = sorted(set(sys.modules) - self._modules_before)
            if late:
                self.log.warning("modules imported while frozen: " + ", ".join(late))
        return problems


def open_writable_files(limit: int = 1024) -> List[int]:
    """Descriptors of this process open for writing on regular files."""
    found = []
    try:
        candidates = sorted(int(n) for n in os.listdir("/dev/fd") if n.isdigit())
    except OSError:
        candidates = list(range(limit))
    for fd in candidates[:limit]:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
                continue
        except OSError:
            continue
        found.append(fd)
    return found


def _fd_path(fd: int) -> str:
    for link in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
        try:
            return os.readlink(link)
        except OSError:
            continue
    return "(a file)"
