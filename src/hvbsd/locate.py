"""Where hvbsd's own data is: templates, roles, playbooks, plugins, lab files, checks.

One place decides, and every module asks it. The data is laid out as the
repository's (and the Ansible collection's) root is: ``templates/``,
``roles/``, ``playbooks/``, ``plugins/``, ``lab/``, ``tests/infra/``,
``docs/hvbsd_vssd.8``. That root is

- the checkout, when hvbsd runs from one (``src/hvbsd`` inside a tree that
  has ``galaxy.yml`` and ``templates/manifest.yml``), editable installs
  included;
- otherwise ``hvbsd/data`` inside the installed package, where the wheel
  puts the same tree (see ``[tool.setuptools]`` in pyproject.toml).

The collection's roles and plugins never import this module: they find
their files relative to themselves, in the same layout.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path

MARKER = Path("templates") / "manifest.yml"


class DataNotFound(RuntimeError):
    """hvbsd's data files are missing: a broken install."""


@cache
def data_root() -> Path:
    """The directory holding templates/, roles/, playbooks/, plugins/, lab/ ..."""
    package = Path(str(importlib.resources.files("hvbsd")))
    installed = package / "data"
    if (installed / MARKER).is_file():
        return installed
    checkout = package.parent.parent  # <checkout>/src/hvbsd
    if (checkout / MARKER).is_file() and (checkout / "galaxy.yml").is_file():
        return checkout
    raise DataNotFound(f"hvbsd's data files are missing (looked in {installed} and "
                       f"{checkout}); reinstall hvbsd")


def data_path(*parts: str) -> Path:
    """A path inside the data root, e.g. ``data_path("roles", "hyperv_guest")``."""
    return data_root().joinpath(*parts)


def collections_path(scratch: Path) -> Path:
    """A collections path in ``scratch`` in which hvbsd.hyperv is the data root
    (a link), so the roles' ``hvbsd.hyperv.*`` plugins resolve from a wheel too."""
    link = scratch / "ansible_collections" / "hvbsd" / "hyperv"
    if not link.is_symlink() or link.resolve() != data_root().resolve():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(data_root())
    return scratch


def ansible_environment(scratch: Path) -> dict[str, str]:
    """Environment for ansible-playbook to find hvbsd's roles and plugins from
    anywhere, without the checkout's ansible.cfg; ``scratch`` holds the
    collections path (see collections_path)."""
    return {
        "ANSIBLE_ROLES_PATH": str(data_path("roles")),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path(scratch)),
        "ANSIBLE_CONNECTION_PLUGINS": str(data_path("plugins", "connection")),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        # FreeBSD's python3 package, where the roles expect it (as ansible.cfg says).
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/local/bin/python3",
    }
