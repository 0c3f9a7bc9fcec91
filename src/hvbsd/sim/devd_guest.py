"""devd for a simulated guest: the guest's own rules, dispatched inside the guest.

The simulated host calls `dispatch` for each event the guest's kernel would
send (DEVFS CDEV CREATE, ETHERNET IFATTACH, HYPERV_NIC_VF VF_UP, ...). The
rules are the ones installed in the guest (`/etc/devd.conf` and the
directories it names), parsed with the project's one devd parser; the actions
run inside the guest with devd's environment, one at a time, as devd runs them.
Every dispatch is appended to `<state>/devd.log`.

The configuration is read at each event, as if devd were restarted after every
change to its files (the roles restart devd whenever they change them).

The devd is the guest's release's: where that release's devd sets the
``vm_guest`` variable (``devd_vm_guest`` in releases.yml), every event gets it
from the guest's ``kern.vm_guest`` (devd.cc, ``process_event``), unless the
event carries its own ``vm_guest=`` pair.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Union

from hvbsd.devd import Dispatcher, DispatchRecord, Event, devd_vm_guest, load_tree
from hvbsd.devd.dispatch import DEVD_PATH, devd_shell
from hvbsd.sim.kernel import Kernel


def media_type_of(kernel: Kernel, name: str) -> Optional[str]:
    """What SIOCGIFMEDIA would say: Ethernet for interfaces with media, else nothing."""
    interface = kernel.snapshot().find(name)
    if interface is None or interface.media is None:
        return None
    return "ethernet"


def kern_vm_guest(kernel: Kernel) -> str:
    """``sysctl kern.vm_guest`` of the guest ("hv" on Hyper-V; "none" without one)."""
    oid = kernel.snapshot().sysctls.get("kern.vm_guest")
    return "none" if oid is None or oid.value in (None, "") else str(oid.value)


def dispatch(guest: Any, event: Union[Event, str], *, quoting: str = "quoted") -> DispatchRecord:
    """Dispatch one event in `guest` (a running `hvbsd.sim.guest.Guest`) as devd would."""
    config = load_tree(guest.path("/"))
    shell = devd_shell()
    kernel = Kernel(guest.kernel_dir)
    vm_guest = devd_vm_guest(guest.release, kern_vm_guest(kernel))

    def run_in_guest(command: str) -> int:
        completed = guest.exec([*shell, "-c", command], env={"PATH": DEVD_PATH})
        return int(completed.returncode)

    dispatcher = Dispatcher(
        config,
        run=run_in_guest,
        quoting=quoting,
        media_type=lambda name: media_type_of(kernel, name),
        vm_guest=vm_guest,
    )
    record = dispatcher.dispatch(event)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.started))
    with open(guest.state_dir / "devd.log", "a", encoding="utf-8") as log:
        log.write(f"{stamp} {record.describe()}\n")
    return record
