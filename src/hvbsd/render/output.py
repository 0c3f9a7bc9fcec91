"""Writing rendered files below the output directory, and comparing with them.

The output directory (``--out``) is the one path the user names; everything
below it is treated as hostile. Below it this module

- reaches every entry through directory descriptors opened one component at a
  time with ``O_NOFOLLOW`` (``os.open(..., dir_fd=...)``), so a symbolic link
  planted anywhere is refused, never followed, and no check can be raced by a
  later use of the same name;
- reads and writes only real directories and regular files: a symbolic link,
  FIFO, socket or device where render would look is refused (``Refused``,
  exit status 2) before anything is written, and a file is only opened after
  ``lstat`` says it is regular (``O_NONBLOCK``, then ``fstat`` again);
- reads an existing file only up to a bound (its expected size when writing,
  ``READ_LIMIT`` for ``--check``), so ``/dev/zero`` or a huge file cannot eat
  memory;
- stages every new file in ``DIR/.hvbsd-stage.XXXXXXXX`` first and only then
  renames into place: a host of an inventory (``DIR/<host>``) is replaced as
  a whole directory, so it is complete (old or new) or absent, never half
  written; a failure to write (``WriteFailed``, exit status 3) while staging
  changes nothing;
- removes what an interrupted render left (its staging directories and the
  ``.<name>.XXXXXXXX`` temporary files of earlier versions), and ``--check``
  reports them.

A host name becomes a directory name here, so it must be one plain path
component whatever the variables layer already checked.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterator, Mapping
from typing import Optional

from hvbsd.render.engine import RenderedFile

# relative path inside one host's tree -> (bytes, mode)
Tree = dict[str, tuple[bytes, int]]

READ_LIMIT = 1 << 20  # --check reads at most this much of an existing file
MAX_DEPTH = 16  # a rendered tree is 6 levels deep; deeper trees are not render's
MAX_ENTRIES = 10_000  # entries of one existing host tree render will look at
NAME_MAX = 255  # bytes in one path component (Linux and FreeBSD)
STAGE_PREFIX = ".hvbsd-stage."
_OURS = re.compile(r"\.hvbsd-stage\.")
# tempfile.mkstemp(prefix=".<name>.") names, as hvbsd render wrote them before
# it staged: a dot, the target's name, a dot and 8 random characters.
_OLD_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# open(2) with O_NOFOLLOW on a symbolic link: ELOOP on Linux, EMLINK on FreeBSD
# (sys/kern/vfs_vnops.c, vn_open_vnode: `if (vp->v_type == VLNK) return (EMLINK)`);
# with O_DIRECTORY, Linux says ENOTDIR. The entry is looked at again to say which.
_NOT_FOLLOWED = (errno.ELOOP, errno.EMLINK, errno.ENOTDIR)


class OutputError(Exception):
    """render cannot use the output directory; the message names the path."""


class Refused(OutputError, ValueError):
    """Something below the output directory is not render's to touch (exit 2)."""


class WriteFailed(OutputError):
    """Reading or writing the output directory failed (exit 3).

    ``written`` names the hosts (``""`` for a single host) already replaced,
    each complete, before the failure.
    """

    def __init__(self, message: str, written: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.written = written


def tree_of(files: Mapping[str, RenderedFile]) -> Tree:
    """The output-directory entries for one host's files (guest paths made relative)."""
    return {guest_path.lstrip("/"): (rendered.file_bytes(), rendered.mode)
            for guest_path, rendered in files.items()}


def _quoted(name: str, limit: int = 64) -> str:
    """A name from disk or the inventory, safe to print: escaped, and at most a prefix."""
    shown = repr(name[:limit])
    return shown + ("..." if len(name) > limit else "")


def _component_problem(name: str) -> Optional[str]:
    """Why ``name`` is not one plain path component, or None if it is."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative directory"
    if "/" in name:
        return "contains '/'"
    if name.startswith("."):
        return "starts with '.'"
    if not name.isprintable():
        return "contains a control or non-printable character"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if len(encoded) > NAME_MAX:
        return f"is longer than {NAME_MAX} bytes"
    return None


def check_host_name(host: str) -> None:
    """Refuse a host name that is not one plain directory name below --out."""
    problem = _component_problem(host)
    if problem is not None:
        raise Refused(f"host {_quoted(str(host))}: {problem}; a host's directory below "
                      "--out must be one plain name")


def _check_hosts(hosts: Mapping[str, Tree]) -> None:
    """Host ``""`` (files straight below --out) only alone; every other name plain."""
    for host, tree in hosts.items():
        if host or len(hosts) > 1:
            check_host_name(host)
        _check_tree(tree)


def _check_tree(tree: Tree) -> None:
    for relative in tree:
        for part in relative.split("/"):
            problem = _component_problem(part)
            if problem is not None:
                raise Refused(f"{_quoted(relative)}: a path component {problem}")


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def _refusal(shown: str, mode: int, wanted: str) -> Refused:
    return Refused(f"{shown}: is {_what(mode)}, not {wanted}; below --out render follows "
                   "no symbolic link and uses only real directories and regular files")


def _lstat(dir_fd: int, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _io(shown: str, verb: str) -> Iterator[None]:
    """An OSError in the block is a WriteFailed naming the path and the reason."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise WriteFailed(f"{shown}: cannot {verb}: {reason}") from exc


def _open_dir(dir_fd: int, name: str, shown: str) -> Optional[int]:
    """A descriptor of the real directory ``name`` in dir_fd; None if it is missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_FOLLOWED:
            found = _lstat(dir_fd, name)
            if found is not None and not stat.S_ISDIR(found.st_mode):
                raise _refusal(shown, found.st_mode, "a directory") from None
        raise


def _walk(root_fd: int, parts: list[str], shown_root: str, create: bool,
          made: Optional[list[str]] = None) -> Optional[int]:
    """Open (or with ``create``, make) the directory root/parts, one component at a
    time without following links. None when a component is missing. The
    directories made are added to ``made``, outermost first."""
    current = os.dup(root_fd)
    try:
        for depth, part in enumerate(parts, 1):
            shown = _join(shown_root, *parts[:depth])
            with _io(shown, "open"):
                child = _open_dir(current, part, shown)
                if child is None and create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=current)
                    except FileExistsError:
                        pass
                    else:
                        if made is not None:
                            made.append("/".join(parts[:depth]))
                    child = _open_dir(current, part, shown)
                    if child is not None:
                        os.fchmod(child, 0o755)
            os.close(current)
            current = -1
            if child is None:
                return None
            current = child
        result, current = current, -1
        return result
    finally:
        if current >= 0:
            os.close(current)


def _read_regular(dir_fd: int, name: str, shown: str, limit: int
                  ) -> Optional[tuple[Optional[bytes], int, int]]:
    """(content or None when larger than ``limit``, size, mode) of the regular file
    ``name``; None when it is missing. Anything but a regular file is refused
    without being opened."""
    with _io(shown, "read"):
        found = _lstat(dir_fd, name)
        if found is None:
            return None
        if not stat.S_ISREG(found.st_mode):
            raise _refusal(shown, found.st_mode, "a regular file")
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _NOT_FOLLOWED:
                raise Refused(f"{shown}: changed into a symbolic link while render read "
                              "it") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _refusal(shown, info.st_mode, "a regular file")
            mode = stat.S_IMODE(info.st_mode)
            if info.st_size > limit:
                return None, info.st_size, mode
            chunks, total = [], 0
            while total <= limit:
                chunk = os.read(fd, limit + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            if total > limit:
                return None, total, mode
            return b"".join(chunks), total, mode
        finally:
            os.close(fd)


def _same(existing: Optional[tuple[Optional[bytes], int, int]], content: bytes,
          mode: int) -> bool:
    return existing is not None and existing[0] == content and existing[2] == mode


# --- what is there ----------------------------------------------------------


class _Existing:
    """An existing host tree below --out: its regular files and directories."""

    def __init__(self) -> None:
        self.files: dict[str, os.stat_result] = {}
        self.dirs: set[str] = set()


def _scan(dir_fd: int, relative: str, shown_root: str, found: _Existing, depth: int = 0
          ) -> None:
    """Every entry below dir_fd, refusing anything but directories and regular files;
    bounded in depth and in the number of entries."""
    if depth > MAX_DEPTH:
        raise Refused(f"{_join(shown_root, relative)}: more than {MAX_DEPTH} directories "
                      "deep; not a tree hvbsd render wrote")
    names: list[str] = []
    with _io(_join(shown_root, relative) or shown_root, "read"), os.scandir(dir_fd) as entries:
        for entry in entries:  # one at a time: a directory of millions stops early
            names.append(entry.name)
            if len(names) + len(found.files) + len(found.dirs) > MAX_ENTRIES:
                raise Refused(f"{shown_root}: more than {MAX_ENTRIES} entries; not a tree "
                              "hvbsd render wrote")
    for name in sorted(names):
        path = _join(relative, name)
        shown = _join(shown_root, path)
        with _io(shown, "read"):
            info = _lstat(dir_fd, name)
        if info is None:
            continue
        if stat.S_ISREG(info.st_mode):
            found.files[path] = info
        elif stat.S_ISDIR(info.st_mode):
            found.dirs.add(path)
            with _io(shown, "read"):
                child = _open_dir(dir_fd, name, shown)
            if child is None:
                continue
            try:
                _scan(child, path, shown_root, found, depth + 1)
            finally:
                os.close(child)
        else:
            raise _refusal(shown, info.st_mode, "a directory or regular file")


def _parents(tree: Tree) -> set[str]:
    parents = set()
    for relative in tree:
        parts = relative.split("/")[:-1]
        parents.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return parents


def _strays(out_fd: int, shown_out: str) -> list[str]:
    """Staging directories left below --out by an interrupted render."""
    with _io(shown_out, "read"):
        names = os.listdir(out_fd)
    strays = sorted(name for name in names if _OURS.match(name))
    for name in strays:
        info = _lstat(out_fd, name)
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise _refusal(_join(shown_out, name), info.st_mode, "a staging directory")
    return strays


def _old_temporaries(dir_fd: int, shown_dir: str, targets: set[str]) -> list[str]:
    """``.<target>.XXXXXXXX`` files next to targets, left by an interrupted render of an
    earlier version; anything of that name that is not a regular file is refused."""
    with _io(shown_dir, "read"):
        names = sorted(os.listdir(dir_fd))
    found = []
    for name in names:
        match = _OLD_TEMPORARY.fullmatch(name)
        if match is None or match.group("target") not in targets:
            continue
        info = _lstat(dir_fd, name)
        if info is None:
            continue
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(_join(shown_dir, name), info.st_mode, "a temporary file")
        found.append(name)
    return found


def _by_directory(tree: Tree) -> dict[str, set[str]]:
    directories: dict[str, set[str]] = {}
    for relative in tree:
        parent, _, name = relative.rpartition("/")
        directories.setdefault(parent, set()).add(name)
    return directories


# --- removing ---------------------------------------------------------------


def _remove(dir_fd: int, name: str, shown: str, depth: int = 0) -> None:
    """Remove ``name`` (a tree render staged, or an old tree it set aside) without
    following any link in it."""
    if depth > MAX_DEPTH + 2:
        raise Refused(f"{shown}: more than {MAX_DEPTH} directories deep; remove it by hand")
    with _io(shown, "remove"):
        info = _lstat(dir_fd, name)
        if info is None:
            return
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            return
        child = _open_dir(dir_fd, name, shown)
        if child is None:
            return
        try:
            for entry in os.listdir(child):
                _remove(child, entry, _join(shown, entry), depth + 1)
        finally:
            os.close(child)
        os.rmdir(name, dir_fd=dir_fd)


# --- the output directory ---------------------------------------------------


def _check_out(out: str) -> None:
    if not out:
        raise Refused("--out is empty: name the output directory")
    if "\0" in out:
        raise Refused("--out contains a NUL character")


def _open_out(out: str) -> Optional[int]:
    """The output directory the user named (following links: it is theirs); None if
    it does not exist."""
    try:
        return os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise Refused(f"{out}: not a directory") from None
    except OSError as exc:
        raise WriteFailed(f"{out}: cannot open: {exc.strerror}") from exc


def _make_out(out: str) -> tuple[int, list[str]]:
    """Open the output directory, creating it and missing parents; the directories
    created, innermost last, so a failure can take them away again."""
    created: list[str] = []
    missing, path = [], os.path.abspath(out)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    try:
        for directory in reversed(missing):
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                continue
            created.append(directory)
    except NotADirectoryError:
        _unmake(created)
        raise Refused(f"{out}: a parent is not a directory") from None
    except OSError as exc:
        _unmake(created)
        raise WriteFailed(f"{out}: cannot create: {exc.strerror}") from exc
    out_fd = _open_out(out)
    if out_fd is None:
        _unmake(created)
        raise Refused(f"{out}: not a directory (a symbolic link to nothing?)")
    return out_fd, created


def _unmake(created: list[str]) -> None:
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _lock(out_fd: int, out: str, exclusive: bool) -> None:
    """One writing render per output directory (flock(2) on the directory itself, so
    no lock file is left); --check waits for none and refuses while one writes."""
    try:
        fcntl.flock(out_fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        raise WriteFailed(f"{out}: another hvbsd render is writing here; try again when "
                          "it is done") from None
    except OSError as exc:
        raise WriteFailed(f"{out}: cannot lock: {exc.strerror}") from exc


# --- writing ----------------------------------------------------------------


def _write_file(dir_fd: int, name: str, content: bytes, mode: int) -> None:
    fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(content)
        while view:
            count = os.write(fd, view)
            if count <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[count:]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _stage_tree(stage_fd: int, name: str, tree: Tree, shown: str) -> None:
    """The whole tree of one host as the directory stage/name."""
    with _io(shown, "write"):
        os.mkdir(name, 0o755, dir_fd=stage_fd)
    top = _walk(stage_fd, [name], shown, create=False)
    assert top is not None
    try:
        with _io(shown, "write"):
            os.fchmod(top, 0o755)
        for relative in sorted(tree):
            content, mode = tree[relative]
            *parents, base = relative.split("/")
            parent = _walk(top, parents, shown, create=True)
            assert parent is not None
            try:
                with _io(_join(shown, relative), "write"):
                    _write_file(parent, base, content, mode)
            finally:
                os.close(parent)
    finally:
        os.close(top)


class _Plan:
    """What one writing render does, found before anything is written."""

    def __init__(self) -> None:
        self.strays: list[str] = []  # staging directories of interrupted renders
        self.old_temporaries: list[tuple[str, str]] = []  # (directory, name), single host
        self.files: dict[str, tuple[bytes, int]] = {}  # single host: files that differ
        self.hosts: dict[str, Tree] = {}  # inventory hosts whose tree differs
        self.existing_hosts: set[str] = set()


def _plan(out_fd: int, out: str, hosts: Mapping[str, Tree]) -> _Plan:
    plan = _Plan()
    plan.strays = _strays(out_fd, out)
    for name in plan.strays:
        with _io(_join(out, name), "read"):
            stray = _open_dir(out_fd, name, _join(out, name))
        if stray is not None:
            try:
                _scan(stray, "", _join(out, name), _Existing())
            finally:
                os.close(stray)
    for host, tree in hosts.items():
        if host:
            _plan_host(out_fd, out, host, tree, plan)
        else:
            _plan_single(out_fd, out, tree, plan)
    return plan


def _plan_single(out_fd: int, out: str, tree: Tree, plan: _Plan) -> None:
    """A single host's files go straight below --out, each renamed into place."""
    for directory, names in sorted(_by_directory(tree).items()):
        parts = directory.split("/") if directory else []
        dir_fd = _walk(out_fd, parts, out, create=False)
        if dir_fd is None:
            plan.files.update({_join(directory, name): tree[_join(directory, name)]
                               for name in names})
            continue
        try:
            shown_dir = _join(out, directory)
            plan.old_temporaries += [(directory, name)
                                     for name in _old_temporaries(dir_fd, shown_dir, names)]
            for name in sorted(names):
                relative = _join(directory, name)
                content, mode = tree[relative]
                existing = _read_regular(dir_fd, name, _join(out, relative), len(content))
                if not _same(existing, content, mode):
                    plan.files[relative] = (content, mode)
        finally:
            os.close(dir_fd)


def _plan_host(out_fd: int, out: str, host: str, tree: Tree, plan: _Plan) -> None:
    """An inventory host's directory is replaced as a whole when anything differs."""
    shown = _join(out, host)
    with _io(shown, "read"):
        host_fd = _open_dir(out_fd, host, shown)
    if host_fd is None:
        plan.hosts[host] = tree
        return
    plan.existing_hosts.add(host)
    try:
        found = _Existing()
        _scan(host_fd, "", shown, found)
        if set(found.files) != set(tree) or found.dirs != _parents(tree):
            plan.hosts[host] = tree
            return
        for relative, (content, mode) in tree.items():
            *parents, base = relative.split("/")
            parent = _walk(host_fd, parents, shown, create=False)
            if parent is None:
                plan.hosts[host] = tree
                return
            try:
                existing = _read_regular(parent, base, _join(shown, relative), len(content))
            finally:
                os.close(parent)
            if not _same(existing, content, mode):
                plan.hosts[host] = tree
                return
    finally:
        os.close(host_fd)


def _new_stage(out_fd: int, out: str) -> str:
    with _io(out, "write"):
        for _ in range(16):
            name = STAGE_PREFIX + secrets.token_hex(4)
            try:
                os.mkdir(name, 0o700, dir_fd=out_fd)
            except FileExistsError:
                continue
            return name
    raise WriteFailed(f"{out}: cannot create a staging directory")


def write_hosts(out: str, hosts: Mapping[str, Tree]) -> list[str]:
    """Write every host's tree below ``out`` (host ``""``: straight into ``out``).

    Returns the paths written, relative to ``out``. Raises Refused (nothing
    written) or WriteFailed.
    """
    _check_out(out)
    _check_hosts(hosts)
    out_fd, created = _make_out(out)
    try:
        _lock(out_fd, out, exclusive=True)
        try:
            plan = _plan(out_fd, out, hosts)
        except OutputError:
            _unmake(created)
            raise
        for name in plan.strays:
            _remove(out_fd, name, _join(out, name))
        for directory, name in plan.old_temporaries:
            dir_fd = _walk(out_fd, directory.split("/") if directory else [], out, False)
            if dir_fd is not None:
                try:
                    with _io(_join(out, directory, name), "remove"):
                        os.unlink(name, dir_fd=dir_fd)
                finally:
                    os.close(dir_fd)
        if not plan.files and not plan.hosts:
            return []
        return _stage_and_commit(out_fd, out, plan, created)
    finally:
        os.close(out_fd)


def _stage_and_commit(out_fd: int, out: str, plan: _Plan, created: list[str]) -> list[str]:
    stage = _new_stage(out_fd, out)
    shown_stage = _join(out, stage)
    written: list[str] = []
    done: list[str] = []
    made: list[str] = []
    try:
        stage_fd = _walk(out_fd, [stage], out, create=False)
        assert stage_fd is not None
        try:
            with _io(shown_stage, "write"):
                os.mkdir("new", 0o700, dir_fd=stage_fd)
                os.mkdir("old", 0o700, dir_fd=stage_fd)
            if plan.files:
                _stage_tree(stage_fd, "files", dict(plan.files), shown_stage)
            if plan.hosts:
                new_fd = _walk(stage_fd, ["new"], shown_stage, create=False)
                assert new_fd is not None
                try:
                    for host in sorted(plan.hosts):
                        _stage_tree(new_fd, host, plan.hosts[host],
                                    _join(shown_stage, "new", host))
                finally:
                    os.close(new_fd)
            # Everything is on disk; from here on only renames, which need no space.
            if plan.files:
                written += _commit_files(out_fd, out, stage_fd, plan.files, made, done)
            for host in sorted(plan.hosts):
                _commit_host(out_fd, out, stage_fd, host, host in plan.existing_hosts)
                done.append(host)
                written += [_join(host, relative) for relative in sorted(plan.hosts[host])]
            with _io(out, "write"):
                os.fsync(out_fd)
        finally:
            os.close(stage_fd)
    except OutputError as exc:
        _remove_quietly(out_fd, stage, shown_stage)
        if done:  # a refusal here is a race lost half-way: say what was replaced
            raise WriteFailed(str(exc), tuple(done)) from exc
        for relative in reversed(made):
            _rmdir_quietly(out_fd, relative)
        _unmake(created)
        raise
    except BaseException:
        _remove_quietly(out_fd, stage, shown_stage)
        raise
    try:
        _remove(out_fd, stage, shown_stage)
    except OutputError as exc:
        raise WriteFailed(str(exc), tuple(done)) from exc
    return written


def _rmdir_quietly(out_fd: int, relative: str) -> None:
    """Take away an empty directory this run made (a failed render leaves none)."""
    *parents, name = relative.split("/")
    with contextlib.suppress(OutputError, OSError):
        parent = _walk(out_fd, parents, "", create=False)
        if parent is not None:
            try:
                os.rmdir(name, dir_fd=parent)
            finally:
                os.close(parent)


def _remove_quietly(out_fd: int, name: str, shown: str) -> None:
    with contextlib.suppress(OutputError, OSError):
        _remove(out_fd, name, shown)


def _commit_files(out_fd: int, out: str, stage_fd: int, files: Mapping[str, tuple[bytes, int]],
                  made: list[str], done: list[str]) -> list[str]:
    """Rename a single host's staged files into place (directories made first; once
    the first rename starts, ``done`` says the host may have changed)."""
    staged = _walk(stage_fd, ["files"], out, create=False)
    assert staged is not None
    try:
        for directory in sorted({relative.rpartition("/")[0] for relative in files}):
            parent = _walk(out_fd, directory.split("/") if directory else [], out, create=True,
                           made=made)
            assert parent is not None
            os.close(parent)
        done.append("")
        for relative in sorted(files):
            *parents, base = relative.split("/")
            source = _walk(staged, parents, out, create=False)
            target = _walk(out_fd, parents, out, create=False)
            try:
                if source is None or target is None:
                    raise WriteFailed(f"{_join(out, relative)}: its directory disappeared")
                with _io(_join(out, relative), "write"):
                    os.replace(base, base, src_dir_fd=source, dst_dir_fd=target)
                    os.fsync(target)
            finally:
                for fd in (source, target):
                    if fd is not None:
                        os.close(fd)
    finally:
        os.close(staged)
    return sorted(files)


def _commit_host(out_fd: int, out: str, stage_fd: int, host: str, existed: bool) -> None:
    """Swap stage/new/host in for out/host: the old tree is first moved into
    stage/old, so out/host is always either complete or absent."""
    shown = _join(out, host)
    new_fd = _walk(stage_fd, ["new"], out, create=False)
    old_fd = _walk(stage_fd, ["old"], out, create=False)
    assert new_fd is not None and old_fd is not None
    try:
        with _io(shown, "replace"):
            if existed:
                os.rename(host, host, src_dir_fd=out_fd, dst_dir_fd=old_fd)
            try:
                os.rename(host, host, src_dir_fd=new_fd, dst_dir_fd=out_fd)
            except OSError:
                if existed:
                    with contextlib.suppress(OSError):
                        os.rename(host, host, src_dir_fd=old_fd, dst_dir_fd=out_fd)
                raise
    finally:
        os.close(new_fd)
        os.close(old_fd)


# --- comparing --------------------------------------------------------------


def _diff_one(relative: str, existing: Optional[tuple[Optional[bytes], int, int]],
              content: bytes, mode: int) -> list[str]:
    if existing is not None and existing[0] is None:
        return [f"differs {relative}: {existing[1]} bytes, larger than the {READ_LIMIT} "
                "render reads; not shown (render replaces it)\n"]
    old_bytes = existing[0] if existing is not None else b""
    assert old_bytes is not None
    chunks: list[str] = []
    if old_bytes != content:
        lines = difflib.unified_diff(
            old_bytes.decode("utf-8", "replace").splitlines(keepends=True),
            content.decode("utf-8", "replace").splitlines(keepends=True),
            fromfile=f"a/{relative}" if existing is not None else "/dev/null",
            tofile=f"b/{relative}",
        )
        chunks += [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines]
    if existing is not None and existing[2] != mode:
        chunks.append(f"mode {relative}: {existing[2]:04o} -> {mode:04o}\n")
    return chunks


def diff_hosts(out: str, hosts: Mapping[str, Tree]) -> list[str]:
    """Unified diffs, mode changes, files render would remove and what an interrupted
    render left, between ``out`` and the rendered trees. Reads nothing unbounded and
    writes nothing."""
    _check_out(out)
    _check_hosts(hosts)
    out_fd = _open_out(out)
    if out_fd is None:
        chunks: list[str] = []
        for host, tree in sorted(hosts.items()):
            for relative in sorted(tree):
                chunks += _diff_one(_join(host, relative), None, *tree[relative])
        return chunks
    try:
        _lock(out_fd, out, exclusive=False)
        chunks = [f"stray {name}: left by an interrupted hvbsd render (render removes it)\n"
                  for name in _strays(out_fd, out)]
        for host, tree in sorted(hosts.items()):
            if host:
                chunks += _diff_host(out_fd, out, host, tree)
            else:
                chunks += _diff_single(out_fd, out, tree)
        return chunks
    finally:
        os.close(out_fd)


def _diff_single(out_fd: int, out: str, tree: Tree) -> list[str]:
    chunks: list[str] = []
    for directory, names in sorted(_by_directory(tree).items()):
        dir_fd = _walk(out_fd, directory.split("/") if directory else [], out, create=False)
        try:
            if dir_fd is not None:
                chunks += [f"stray {_join(directory, _quoted(name)[1:-1])}: a temporary file "
                           "left by an interrupted hvbsd render (render removes it)\n"
                           for name in _old_temporaries(dir_fd, _join(out, directory), names)]
            for name in sorted(names):
                relative = _join(directory, name)
                existing = None if dir_fd is None else _read_regular(
                    dir_fd, name, _join(out, relative), READ_LIMIT)
                chunks += _diff_one(relative, existing, *tree[relative])
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
    return chunks


def _diff_host(out_fd: int, out: str, host: str, tree: Tree) -> list[str]:
    shown = _join(out, host)
    with _io(shown, "read"):
        host_fd = _open_dir(out_fd, host, shown)
    if host_fd is None:
        return [chunk for relative in sorted(tree)
                for chunk in _diff_one(_join(host, relative), None, *tree[relative])]
    try:
        found = _Existing()
        _scan(host_fd, "", shown, found)
        chunks: list[str] = []
        for relative in sorted(tree):
            *parents, base = relative.split("/")
            parent = _walk(host_fd, parents, shown, create=False)
            try:
                existing = None if parent is None else _read_regular(
                    parent, base, _join(shown, relative), READ_LIMIT)
            finally:
                if parent is not None:
                    os.close(parent)
            chunks += _diff_one(_join(host, relative), existing, *tree[relative])
        wanted = set(tree) | _parents(tree)
        names = _by_directory(tree)
        for path in sorted(set(found.files) | found.dirs):
            parent, _, name = path.rpartition("/")
            if path in wanted or (parent and parent not in wanted):
                continue  # rendered, or inside an extra directory reported already
            match = _OLD_TEMPORARY.fullmatch(name)
            shown_path = _join(host, "/".join(_quoted(part)[1:-1] for part in path.split("/")))
            if match and path in found.files and match.group("target") in names.get(parent, ()):
                chunks.append(f"stray {shown_path}: a temporary file left by an interrupted "
                              "hvbsd render (render removes it)\n")
            else:
                kind = "directory" if path in found.dirs else "file"
                chunks.append(f"extra {shown_path}: a {kind} render did not make for this "
                              "host (render removes it)\n")
        return chunks
    finally:
        os.close(host_fd)
