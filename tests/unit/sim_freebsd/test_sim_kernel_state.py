"""The simulated kernel's state: creation, transactions, concurrency, VF and lagg rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd.sim.kernel import Kernel, KernelError, read_loader_settings


def test_create_builds_a_freebsd_14_hyperv_guest(tmp_path):
    kernel = Kernel.create(tmp_path / "k", hostname="g1", preset="zfs", nics=2)
    state = kernel.snapshot()
    assert [i.name for i in state.interfaces] == ["lo0", "hn0", "hn1"]
    assert state.sysctls["kern.vm_guest"].value == "hv"
    assert state.sysctls["kern.ostype"].value == "FreeBSD"
    assert state.sysctls["hw.hn.vf_transparent"].value == 1
    assert state.sysctls["hw.hn.vf_transparent"].access == "rdtun"
    assert state.sysctls["dev.hn.1.vf"].value == ""
    assert {m.fstype for m in state.mounts} == {"zfs", "devfs"}
    assert state.interface("hn0").ether != state.interface("hn1").ether


def test_old_kernel_has_no_vf_sysctls(tmp_path):
    state = Kernel.create(tmp_path / "k", old_kernel=True).snapshot()
    assert "hw.hn.vf_transparent" not in state.sysctls
    assert "hw.hn.vflist" not in state.sysctls
    assert "dev.hn.0.vf" not in state.sysctls


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"preset": "btrfs"}, "preset 'btrfs'"),
        ({"nics": -1}, "nics -1"),
        ({"nics": 99}, "nics 99"),
        ({"hostname": "a b"}, "hostname 'a b'"),
        ({"hostname": "x;reboot"}, "hostname 'x;reboot'"),
    ],
)
def test_create_rejects_bad_input_naming_it(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        Kernel.create(tmp_path / "k", **arguments)
    assert not (tmp_path / "k" / "kernel.json").exists()


def test_create_refuses_to_overwrite_a_kernel(tmp_path):
    Kernel.create(tmp_path / "k")
    with pytest.raises(FileExistsError, match="already exists"):
        Kernel.create(tmp_path / "k")


def test_missing_kernel_directory_is_a_clear_error(tmp_path):
    with pytest.raises(KernelError, match="no simulated kernel"):
        Kernel(tmp_path / "nothing").snapshot()


def test_transaction_writes_nothing_when_the_block_fails(tmp_path):
    kernel = Kernel.create(tmp_path / "k")
    before = (tmp_path / "k" / "kernel.json").read_bytes()
    with pytest.raises(RuntimeError), kernel.transaction() as state:
        state.hostname = "changed"
        raise RuntimeError("abort")
    assert (tmp_path / "k" / "kernel.json").read_bytes() == before
    assert kernel.snapshot().hostname != "changed"


def test_concurrent_processes_lose_no_update(tmp_path):
    kernel = Kernel.create(tmp_path / "k")
    worker = (
        "import sys\n"
        "from hvbsd.sim.kernel import Kernel, Sysctl\n"
        "kernel = Kernel(sys.argv[1])\n"
        "for n in range(25):\n"
        "    with kernel.transaction() as state:\n"
        "        oid = state.sysctls.setdefault('test.counter', Sysctl(0, 'int', 'rw'))\n"
        "        oid.value += 1\n"
        "        state.sysctls[f'test.w{sys.argv[2]}.{n}'] = Sysctl(n, 'int', 'rw')\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", worker, str(kernel.directory), str(i)])
        for i in range(6)
    ]
    assert all(w.wait(timeout=120) == 0 for w in workers)
    state = kernel.snapshot()
    assert state.sysctls["test.counter"].value == 150
    assert sum(1 for name in state.sysctls if name.startswith("test.w")) == 150
    json.loads((tmp_path / "k" / "kernel.json").read_text())


def test_vf_attach_shares_the_hn_mac_and_updates_sysctls(tmp_path):
    kernel = Kernel.create(tmp_path / "k", nics=2)
    kernel.attach_vf("hn1", "mce0")
    state = kernel.snapshot()
    assert state.interface("mce0").ether == state.interface("hn1").ether
    assert state.sysctls["dev.hn.1.vf"].value == "mce0"
    assert state.sysctls["hw.hn.vflist"].value == "mce0"
    assert kernel.detach_vf("hn1") == "mce0"
    state = kernel.snapshot()
    assert state.find("mce0") is None
    assert state.sysctls["dev.hn.1.vf"].value == ""
    assert state.sysctls["hw.hn.vflist"].value == ""


def test_vf_attach_to_a_non_hn_interface_is_refused(tmp_path):
    kernel = Kernel.create(tmp_path / "k")
    with pytest.raises(KernelError, match="lo0 is not an hn"):
        kernel.attach_vf("lo0", "mce0")
    with pytest.raises(KernelError, match="hn7 does not exist"):
        kernel.attach_vf("hn7", "mce0")


def test_boot_applies_loader_tunables_later_files_winning(tmp_path):
    kernel = Kernel.create(tmp_path / "k")
    boot = tmp_path / "boot"
    (boot / "loader.conf.d").mkdir(parents=True)
    (boot / "loader.conf").write_text('hw.hn.vf_transparent="1"\nmlx5en_load="YES"\n')
    (boot / "loader.conf.d" / "hvbsd.conf").write_text(
        '# lagg mode\nhw.hn.vf_transparent="0"  # comment\n'
    )
    settings = kernel.boot(boot)
    assert settings["mlx5en_load"] == "YES"
    assert kernel.snapshot().sysctls["hw.hn.vf_transparent"].value == 0


def test_loader_reader_skips_comments_and_junk(tmp_path):
    (tmp_path / "loader.conf").write_text('# x="1"\n\nbroken line\nkern.maxfiles=1000\n')
    assert read_loader_settings(tmp_path) == {"kern.maxfiles": "1000"}


def test_failover_active_port_follows_link_state(tmp_path):
    kernel = Kernel.create(tmp_path / "k")
    kernel.attach_vf("hn0", "mce0")
    with kernel.transaction() as state:
        for name in ("hn0", "mce0"):
            state.interface(name).flags.append("UP")
        lagg = state.add_interface(
            type(state.interface("hn0"))(
                name="lagg0", driver="lagg", unit=0, index=0, lagg_proto="failover", cloned=True
            )
        )
        state.lagg_add_port(lagg, state.interface("hn0"))
        state.lagg_add_port(lagg, state.interface("mce0"))
        assert state.lagg_port_flags(lagg, "hn0") == 0x5
        assert state.lagg_port_flags(lagg, "mce0") == 0
        state.interface("hn0").link = "down"
        assert state.lagg_port_flags(lagg, "hn0") == 0x1
        assert state.lagg_port_flags(lagg, "mce0") == 0x4
        with pytest.raises(KernelError) as error:
            state.lagg_add_port(lagg, state.interface("hn0"))
        assert error.value.errno == 17
    kernel.detach_vf("hn0")
    state = kernel.snapshot()
    assert state.interface("lagg0").lagg_ports == ["hn0"]
    assert state.interface("hn0").laggdev == "lagg0"


def test_dhcp_leases_are_stable_per_mac(tmp_path):
    kernel = Kernel.create(tmp_path / "k", nics=2)
    with kernel.transaction() as state:
        first = state.network.lease_for("00:15:5D:00:00:01").address
        second = state.network.lease_for("00:15:5d:00:00:02").address
        again = state.network.lease_for("00:15:5d:00:00:01").address
    assert first == again == "10.0.0.4"
    assert second == "10.0.0.5"


def test_kernel_state_is_plain_json(tmp_path):
    Kernel.create(tmp_path / "k")
    data = json.loads(Path(tmp_path / "k" / "kernel.json").read_text())
    assert data["sysctls"]["kern.vm_guest"]["value"] == "hv"
