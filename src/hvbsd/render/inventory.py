"""Hosts and their variables from an Ansible inventory, as ansible-core sees them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

PREFIXES = ("hyperv_guest_", "hyperv_vss_")


def _plain(value: Any) -> Any:
    """Ansible's tagged/lazy containers and strings as plain Python data."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
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

    Raises ValueError when the inventory cannot be read or the limit matches nothing.
    """
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

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
    manager = VariableManager(loader=loader, inventory=inventory)
    found: dict[str, dict[str, Any]] = {}
    for host in sorted(hosts, key=lambda h: h.name):
        all_vars = manager.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=all_vars)
        found[host.name] = {
            name: _plain(templar.template(value))
            for name, value in all_vars.items() if name.startswith(PREFIXES)
        }
    return found
