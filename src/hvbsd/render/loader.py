"""A YAML loader for files that come from outside: variables files and inventories.

PyYAML's safe loader alone would expand a few hundred bytes of aliases into
gigabytes, keep the last of two equal keys without a word, and build bytes,
dates and sets from tags. This loader refuses all of that before building a
single value:

- files over ``MAX_BYTES``, and anything that is not a regular file (a FIFO
  would block, ``/dev/zero`` would never end);
- documents whose aliases expand to more than ``MAX_NODES`` nodes;
- duplicate keys in a mapping (the error names both lines);
- tags other than the core schema's (str, int, float, bool, null, seq, map,
  and the merge key), plus Ansible's ``!unsafe`` and ``!vault`` strings in
  inventories.

Errors are ``ValueError("FILE:LINE: what is wrong")``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import yaml

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
_CORE = "tag:yaml.org,2002:"
CORE_TAGS = frozenset(_CORE + name for name in
                      ("str", "int", "float", "bool", "null", "seq", "map", "merge"))
# Strings in Ansible's dialect: !unsafe marks a string Jinja must not template;
# !vault holds an encrypted string. Both are plain strings to hvbsd.
ANSIBLE_STRING_TAGS = frozenset({"!unsafe", "!vault"})

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_bounded(path: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ValueError otherwise.

    Opened without blocking (a FIFO) and checked with fstat on the open
    descriptor, so what is read is what was checked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path}: {info.st_size} bytes; at most {limit} are read")
        chunks = []
        size = 0
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:  # it grew while we read
                raise ValueError(f"{path}: more than {limit} bytes; at most {limit} are read")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_graph(root: yaml.Node, source: str, extra_tags: frozenset[str]) -> None:
    """Refuse what the node graph shows: alias expansion, duplicate keys, odd tags.

    Aliases are shared nodes, so expanded sizes are counted once per node
    (memoised): the walk is linear in the document, not in its expansion.
    """
    allowed = CORE_TAGS | extra_tags
    expanded: dict[int, int] = {}
    on_path: set[int] = set()

    def where(node: yaml.Node) -> str:
        return f"{source}:{node.start_mark.line + 1}"

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in expanded:
            return expanded[key]
        if key in on_path:
            raise ValueError(f"{where(node)}: a recursive alias")
        if node.tag not in allowed:
            shown = node.tag.replace(_CORE, "!!")
            hint = "; quote the date" if node.tag == _CORE + "timestamp" else ""
            raise ValueError(f"{where(node)}: tag {shown} is not allowed{hint}")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _CORE + "merge":
                    ident = (key_node.tag, key_node.value)
                    if ident in seen:
                        raise ValueError(
                            f"{where(key_node)}: duplicate key {key_node.value[:40]!r} "
                            f"(first at line {seen[ident]})")
                    seen[ident] = key_node.start_mark.line + 1
                total += size(key_node) + size(value_node)
                if total > MAX_NODES:
                    break
        on_path.discard(key)
        if total > MAX_NODES:
            raise ValueError(f"{where(node)}: expands to more than {MAX_NODES} values "
                             "(aliases repeated too often)")
        expanded[key] = total
        return total

    size(root)


def _string_tag(loader: Any, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))


class _AnsibleLoader(_Loader):  # type: ignore[misc,valid-type]
    """The same loader, with Ansible's string tags."""


for _tag in ANSIBLE_STRING_TAGS:
    _AnsibleLoader.add_constructor(_tag, _string_tag)


def parse(text: bytes, source: str, ansible_tags: bool = False) -> Any:
    """One YAML document from text, checked as the module says."""
    extra = ANSIBLE_STRING_TAGS if ansible_tags else frozenset()
    loader = (_AnsibleLoader if ansible_tags else _Loader)(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"{source}{line}: not valid YAML: {problem}") from None
        if node is None:
            return None
        _check_graph(node, source, extra)
        try:
            return loader.construct_document(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"{source}: cannot read a value: {str(exc)[:200]}") from None
    finally:
        loader.dispose()


def load_file(path: str, ansible_tags: bool = False) -> Any:
    """The checked YAML document of a file (ValueError "FILE[:LINE]: ...")."""
    return parse(read_bounded(path), path, ansible_tags)


def load_vars_file(path: str) -> dict[str, Any]:
    """The variables of one host's YAML file: a mapping with string keys."""
    data = load_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else type(data).__name__
        raise ValueError(f"{path}: expected a mapping of variables, found {kind}")
    for key in data:
        if not isinstance(key, str):
            raise ValueError(f"{path}: variable names must be strings, not {key!r:.40}")
    return data
