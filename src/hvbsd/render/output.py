"""Writing rendered files as a tree of guest paths, and comparing with one."""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hvbsd.render.engine import RenderedFile

# relative path inside the output directory -> (bytes, mode)
Tree = dict[str, tuple[bytes, int]]


def tree_of(files: Mapping[str, RenderedFile], prefix: str = "") -> Tree:
    """The output-directory entries for one host's files (guest paths made relative)."""
    tree: Tree = {}
    for guest_path, rendered in files.items():
        relative = guest_path.lstrip("/")
        tree[f"{prefix}/{relative}" if prefix else relative] = (rendered.file_bytes(),
                                                               rendered.mode)
    return tree


def _current(path: Path) -> tuple[bytes, int] | None:
    try:
        return path.read_bytes(), stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def write_atomically(path: Path, content: bytes, mode: int) -> None:
    """Replace path with content: a temporary file in the same directory, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_tree(out: Path, tree: Tree) -> list[str]:
    """Write every entry that differs (content or mode); returns the paths written."""
    written = []
    for relative in sorted(tree):
        content, mode = tree[relative]
        target = out / relative
        if _current(target) == (content, mode):
            continue
        write_atomically(target, content, mode)
        written.append(relative)
    return written


def diff_tree(out: Path, tree: Tree) -> list[str]:
    """Unified diffs (and mode changes) between out and the rendered tree."""
    chunks: list[str] = []
    for relative in sorted(tree):
        content, mode = tree[relative]
        current = _current(out / relative)
        old_bytes, old_mode = current if current is not None else (b"", None)
        old_name = f"a/{relative}" if current is not None else "/dev/null"
        if old_bytes != content:
            chunks.extend(difflib.unified_diff(
                old_bytes.decode("utf-8", "replace").splitlines(keepends=True),
                content.decode("utf-8", "replace").splitlines(keepends=True),
                fromfile=old_name, tofile=f"b/{relative}",
            ))
        if old_mode is not None and old_mode != mode:
            chunks.append(f"mode {relative}: {old_mode:04o} -> {mode:04o}\n")
    return [chunk if chunk.endswith("\n") else chunk + "\n\\ No newline at end of file\n"
            for chunk in chunks]
