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

import fnmatch
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hvbsd.vss import simwire
from hvbsd.vss.hooks import HookDirError, Hooks
from hvbsd.vss.log import Log
from hvbsd.vss.mounts import Mount
from hvbsd.vss.platform import Platform, PlatformError, Suspension

CHOICES = ("sync", "veto", "ignore")

#: filesystems with nothing of their own on disk: views, memory, kernel state
PSEUDO_FSTYPES = frozenset({
    "devfs", "fdescfs", "procfs", "linprocfs", "linsysfs", "mqueuefs", "autofs",
    "tmpfs", "nullfs", "unionfs", "tarfs", "p9fs"})

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


StateCallback = Callable[[Dict[str, object]], None]


class Policy:
    """The daemon's frozen/thawed state and the three operations."""

    def __init__(self, platform: Platform, hooks: Optional[Hooks], settings: Settings,
                 log: Log, on_state: Optional[StateCallback] = None) -> None:
        self.platform = platform
        self.hooks = hooks
        self.settings = settings
        self.log = log
        self.on_state = on_state
        self.suspensions: List[Suspension] = []
        self.frozen_hooks: List[str] = []
        self.frozen_at: Optional[float] = None
        self._modules_before: frozenset = frozenset()

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
        return {"frozen": frozen, "filesystems": filesystems, "hooks": list(self.frozen_hooks)}

    def _persist(self, planned: Sequence[Mount] = ()) -> None:
        # only ever called while no filesystem is suspended
        if self.on_state is not None:
            self.on_state(self.snapshot(planned))

    def _runs_hooks(self, scope: str) -> bool:
        return self.hooks is not None and (scope == SCOPE_APP or self.settings.hooks_on_fs)

    # operations

    def check(self, scope: str = SCOPE_FS) -> Outcome:
        reasons = []
        summary = "hooks only"
        if scope == SCOPE_FS:
            try:
                plan = make_plan(self.platform.list_mounts(), self.settings)
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

    def freeze(self, scope: str = SCOPE_FS) -> Outcome:
        if self._holds(scope):
            self.log.warning("FREEZE while already frozen: thawing the earlier freeze first")
            self.thaw(scope)
        plan = Plan()
        if scope == SCOPE_FS:
            try:
                plan = make_plan(self.platform.list_mounts(), self.settings)
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
        if hook_names:
            self._persist(plan.suspend)
        failure = self._freeze_hooks(hook_names)
        if failure is None and scope == SCOPE_FS:
            failure = self._freeze_filesystems(plan)
        if failure is not None:
            self.log.error(f"FREEZE failed: {failure}; rolling back")
            undo = self._thaw_hooks() if self._runs_hooks(scope) else []
            self._settle()
            self._persist()
            return Outcome(False, "; ".join([failure, *undo]))
        done = plan.summary() if scope == SCOPE_FS else "hooks"
        if hook_names and scope == SCOPE_FS:
            done += "; hooks " + ", ".join(hook_names)
        return Outcome(True, f"frozen: {done}")

    def thaw(self, scope: str = SCOPE_FS, reason: str = "THAW") -> Outcome:
        if not self._holds(scope):
            return Outcome(True, "nothing was frozen")
        problems = self._thaw_filesystems() if scope == SCOPE_FS else []
        if self._runs_hooks(scope):
            problems += self._thaw_hooks()
        self._settle()
        self._persist()
        if problems:
            return Outcome(False, f"{reason}: " + "; ".join(problems))
        return Outcome(True, f"{reason}: thawed")

    def thaw_everything(self, reason: str) -> Outcome:
        """Watchdog and shutdown: filesystems first, then every frozen hook."""
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

    def _freeze_hooks(self, names: Sequence[str]) -> Optional[str]:
        for name in names:
            result = self.hooks.run(name, "freeze")  # type: ignore[union-attr]
            # it ran freeze, so it gets thaw, even when it failed
            self.frozen_hooks.append(name)
            self._persist()
            self._log_hook(result.ok, result.describe(), result.output)
            if not result.ok:
                return result.describe()
        return None

    def _thaw_hooks(self) -> List[str]:
        problems = []
        while self.frozen_hooks:
            name = self.frozen_hooks.pop()
            result = self.hooks.run(name, "thaw")  # type: ignore[union-attr]
            self._log_hook(result.ok, result.describe(), result.output)
            if not result.ok:
                problems.append(result.describe())
        return problems

    def _log_hook(self, ok: bool, description: str, output: str) -> None:
        text = description + (f"; output: {output}" if output else "")
        if ok:
            self.log.info(text)
        else:
            self.log.error(text)

    def _freeze_filesystems(self, plan: Plan) -> Optional[str]:
        try:
            if plan.suspend or plan.sync_others:
                self.platform.sync()
            if plan.pools:
                self.platform.zpool_sync(plan.pools)
        except PlatformError as exc:
            return f"{exc} ({exc.errno_name})"
        if not plan.suspend:
            return None
        # the last write before anything is suspended: says what a restart must undo
        self._persist(plan.suspend)
        self._modules_before = frozenset(sys.modules)
        self.log.hold()
        for mount in plan.suspend:
            try:
                self.suspensions.append(self.platform.suspend(mount))
            except PlatformError as exc:
                problems = self._thaw_filesystems()
                return "; ".join([f"{exc} ({exc.errno_name})", *problems])
            self.log.info(f"suspended {mount.mount_on} (fsid {mount.fsid_text})")
        return None

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
