"""Put what hvbsd renders for a host straight into a simulated guest.

This is what `ansible-playbook deploy.yml` leaves on a guest, without Ansible:
for tests and scenarios that need a configured guest quickly. The deploy itself
is tested against the same render output byte for byte.
"""

from __future__ import annotations

from typing import Any, Mapping

from hvbsd.render import RenderedFile, render_host
from hvbsd.sim.kernel import Kernel

_WRITE = 'mkdir -p "$(dirname "$1")" && cat {redirect} "$1" && chmod "$2" "$1"'


def install_rendered(
    guest: Any, variables: Mapping[str, Any], *, boot: bool = True
) -> dict[str, RenderedFile]:
    """Write every file hvbsd renders for `variables` into `guest` (the rc.conf
    block appended to the guest's rc.conf); with `boot`, apply the loader
    tunables as a reboot would."""
    rendered = render_host(variables)
    for wanted in rendered.values():
        data = wanted.file_bytes() if wanted.block else wanted.content
        script = _WRITE.format(redirect=">>" if wanted.block else ">")
        guest.exec(
            ["sh", "-c", script, "sh", wanted.path, format(wanted.mode, "o")],
            input=data,
            check=True,
        )
    if boot:
        Kernel(guest.kernel_dir).boot(guest.path("/boot"))
    return rendered
