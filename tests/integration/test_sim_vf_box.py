"""The FreeBSD-box personality, with FreeBSD's command layer replaced at the process boundary.

There is no FreeBSD here.  The box code runs inside a simulated guest
without hn NICs, whose ifconfig stands in for FreeBSD's (epair, rename,
ether, lagg, destroy); ``jail``, ``jexec``, ``kldload`` and the bridge
member commands the simulator lacks are recording fakes first on the box's
command PATH.  The sysctl shim answers dev.hn.* although this kernel has no
hn at all, so the scripts can only succeed through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvbsd.sim.box import parse_ifconfig
from hvbsd.sim.kernel import Kernel
from hvbsd.sim.rendered import install_rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def install(guest: Any) -> None:
    """static-dual-stack.yml rendered into the box, loader tunables booted."""
    values = yaml.safe_load((ROOT / "examples/static-dual-stack.yml").read_text())
    values["hyperv_guest_vf_delay"] = 2
    install_rendered(guest, values, boot=False)


FAKES = "/usr/local/fake/bin"
RECORD = "/var/log/fake-commands"
RECORDER = f"""#!/bin/sh
echo "$(basename "$0") $*" >> {RECORD}
"""
# Bridge membership and vnet moves are not simulated: record them, run the rest.
IFCONFIG = f"""#!/bin/sh
echo "ifconfig $*" >> {RECORD}
case "$2" in
addm|vnet) exit 0 ;;
esac
exec /sbin/ifconfig "$@"
"""
BOX = ["/usr/local/bin/python3", "-m", "hvbsd.sim.box", "--state", "/var/run/hvbsd-box"]


def box_guest(sim_guests: Any, name: str) -> Any:
    guest = sim_guests(name, nics=0)
    for command, text in (("jail", RECORDER), ("jexec", RECORDER), ("kldload", RECORDER),
                          ("ifconfig", IFCONFIG)):
        guest.exec(["sh", "-c", f'mkdir -p {FAKES} && cat > "$1" && chmod 755 "$1"', "sh",
                    f"{FAKES}/{command}"], input=text.encode(), check=True)
    guest.exec(["sh", "-c", "rm -f /usr/local/etc/devd/*"], check=True)
    install(guest)
    return guest


def run_box(guest: Any, *argv: str) -> Any:
    env = {"PATH": "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/bin",
           "HVBSD_BOX_PATH": f"{FAKES}:/sbin:/bin:/usr/sbin:/usr/bin"}
    return guest.exec([*BOX, *argv], env=env, text=True, timeout=120)


def test_box_setup_attach_and_detach_use_real_commands_and_the_shim(sim_guests):
    guest = box_guest(sim_guests, "box")

    setup = run_box(guest, "setup")

    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert setup.stdout.strip() == "created: hvbsdbr0 hvbsd-host hn0"
    recorded = guest.path(RECORD).read_text()
    assert "jail -c name=hvbsd-host vnet persist" in recorded
    assert "jexec hvbsd-host ifconfig epair0b inet 10.0.0.1/24 up" in recorded
    assert "ifconfig hvbsdbr0 addm epair1b" in recorded
    assert run_box(guest, "setup").stdout.strip() == "unchanged"
    kernel = Kernel(guest.kernel_dir)
    assert kernel.snapshot().find("hn0") is not None, "hn0 is a renamed epair end"
    assert guest.exec(["/etc/rc.d/netif", "start", "hn0"]).returncode == 0

    attach = run_box(guest, "vf", "attach", "hn0", "--json")

    assert attach.returncode == 0, attach.stdout + attach.stderr
    shown = json.loads(attach.stdout)
    seen = [e["event"] for e in shown["events"]]
    assert seen[:2] == ["!system=IFNET subsystem=mce0 type=ATTACH",
                        "!system=ETHERNET subsystem=mce0 type=IFATTACH"]
    assert "!system=HYPERV_NIC_VF subsystem=hn0 type=VF_UP" in seen
    assert not any("lagg0" in line for line in seen), "the real kernel announces the lagg"
    state = kernel.snapshot()
    lagg = state.interface("lagg0")
    assert lagg.lagg_ports == ["hn0", "mce0"]
    assert [a.address for a in lagg.inet] == ["192.0.2.10"]
    assert state.interface("mce0").ether == state.interface("hn0").hwaddr or \
        state.interface("mce0").ether == lagg.ether
    assert "dev.hn.0.vf" not in state.sysctls, "only the shim knows the hn OIDs"

    detach = run_box(guest, "vf", "detach", "hn0", "--json")

    assert detach.returncode == 0, detach.stderr
    seen = [e["event"] for e in json.loads(detach.stdout)["events"]]
    assert seen[:2] == ["!system=HYPERV_NIC_VF subsystem=hn0 type=VF_DOWN",
                        "!system=IFNET subsystem=mce0 type=DETACH"]
    assert kernel.snapshot().interface("lagg0").lagg_ports == ["hn0"]


def test_sysctl_shim_answers_hn_oids_and_passes_the_rest_on(sim_guest):
    shim = ROOT / "src/hvbsd/sim/box/sysctl.sh"
    sim_guest.exec(["sh", "-c", 'cat > /tmp/sysctl && chmod 755 /tmp/sysctl'],
                   input=shim.read_bytes(), check=True)
    sim_guest.exec(["sh", "-c", "printf 'dev.hn.0.vf=mce0\\nhw.hn.vflist=mce0\\n' > /tmp/state"],
                   check=True)
    env = {"PATH": "/sbin:/bin:/usr/sbin:/usr/bin", "HVBSD_BOX_SYSCTLS": "/tmp/state"}

    def shim_run(*argv: str) -> Any:
        return sim_guest.exec(["/tmp/sysctl", *argv], env=env, text=True)

    assert shim_run("-n", "dev.hn.0.vf", "kern.ostype").stdout == "mce0\nFreeBSD\n"
    assert shim_run("hw.hn.vflist").stdout == "hw.hn.vflist: mce0\n"
    assert shim_run("dev.hn.0.vf=x").returncode == 1
    assert shim_run("-n", "dev.hn.1.vf").returncode != 0, "unknown hn OIDs go to the real sysctl"


def test_parse_ifconfig_reads_freebsd_output():
    text = (
        "lagg0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500\n"
        "\tether 00:15:5d:3c:a4:8e\n"
        "\tlaggproto failover lagghash l2,l3,l4\n"
        "\tlaggport: hn0 flags=1<MASTER>\n"
        "\tlaggport: mce0 flags=4<ACTIVE>\n"
        "\tstatus: active\n"
        "lo0: flags=1008049<UP,LOOPBACK,RUNNING,MULTICAST,LOWER_UP> metric 0 mtu 16384\n"
        "\tinet 127.0.0.1 netmask 0xff000000\n"
    )
    parsed = parse_ifconfig(text)
    assert parsed["lagg0"]["ports"] == ["hn0", "mce0"] and parsed["lagg0"]["lagg"]
    assert parsed["lagg0"]["status"] == "active"
    assert "LOOPBACK" in parsed["lo0"]["flags"] and parsed["lo0"]["ether"] is None
