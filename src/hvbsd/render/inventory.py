"""Hosts and their variables from an Ansible inventory, as ansible-core sees them.

The inventory's YAML files are read first with hvbsd's own loader (size,
alias expansion, duplicate keys, tags): ansible-core would accept an alias
bomb by reference and keep the last of two equal keys. Host names become
directory names, so they are checked against one grammar.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from hvbsd.render.loader import MAX_NODES, load_file

PREFIXES = ("hyperv_guest_", "hyperv_vss_")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
MAX_FILES = 10_000
VAULT_HEADER = b"$ANSIBLE_VAULT;"


def _yaml_files(source: Path) -> Iterator[Path]:
    """The files ansible-core reads as YAML for this inventory source: YAML
    inventory files and everything in group_vars/ and host_vars/ beside it."""
    base = source if source.is_dir() else source.parent
    if source.is_dir():
        yield from sorted(p for p in source.iterdir() if p.suffix in YAML_SUFFIXES)
    elif source.suffix in YAML_SUFFIXES:
        yield source
    for kind in ("group_vars", "host_vars"):
        top = base / kind
        if not top.is_dir():
            continue
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder, name)
                if not name.startswith(".") and path.suffix in ("", *YAML_SUFFIXES):
                    yield path


def check_inventory_files(source: str) -> None:
    """Read each YAML file of the inventory with hvbsd's loader; ValueError on a bad one."""
    for count, path in enumerate(_yaml_files(Path(source))):
        if count >= MAX_FILES:
            raise ValueError(f"{source}: more than {MAX_FILES} files of variables")
        with open(path, "rb") as handle:
            if handle.read(len(VAULT_HEADER)) == VAULT_HEADER:
                continue  # a vault-encrypted file: ansible-core decrypts it
        load_file(str(path), ansible_tags=True)


class _Budget:
    """How many values _plain may still copy: a bound on templated expansions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.left = MAX_NODES

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ValueError(f"{self.name}: more than {MAX_NODES} values")


def _plain(value: Any, budget: _Budget) -> Any:
    """Ansible's tagged/lazy containers and strings as plain Python data."""
    budget.spend()
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else repr(key): _plain(item, budget)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, budget) for item in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def inventory_hosts(source: str, limit: Optional[str] = None) -> dict[str, dict[str, Any]]:
    """host name -> its hvbsd variables (group_vars/host_vars applied, templates resolved).

    Raises ValueError when the inventory cannot be read, a host name cannot be
    a directory name, or the limit matches nothing.
    """
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    from hvbsd.render.engine import checks_module

    if not os.path.exists(source):
        raise ValueError(f"{source}: no such inventory")
    check_inventory_files(source)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[source])
    if not inventory.list_hosts("all") and not inventory.groups.get("all"):
        raise ValueError(f"{source}: no hosts in this inventory")
    if limit:
        inventory.subset(limit)
    hosts = inventory.get_hosts("all")
    if not hosts:
        raise ValueError(f"{source}: no host matches --limit {limit!r}" if limit
                         else f"{source}: no hosts in this inventory")
    host_name_problem = checks_module().host_name_problem
    bad = [problem for problem in (host_name_problem(h.name) for h in hosts) if problem]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{source}: " + "; ".join(bad[:5]) + more)
    manager = VariableManager(loader=loader, inventory=inventory)
    found: dict[str, dict[str, Any]] = {}
    for host in sorted(hosts, key=lambda h: h.name):
        all_vars = manager.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=all_vars)
        budget = _Budget(f"{source}: host {host.name}")
        found[host.name] = {
            name: _plain(templar.template(value), budget)
            for name, value in all_vars.items() if name.startswith(PREFIXES)
        }
    return found
