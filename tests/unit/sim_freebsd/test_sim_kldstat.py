"""kldstat(8) as FreeBSD's sbin/kldstat/kldstat.c, in the forms rc.subr's load_kld uses."""

from __future__ import annotations

import pytest

from hvbsd.sim.freebsd.kldstat import USAGE


def test_listing_starts_with_the_kernel(run_command):
    lines = run_command("kldstat").stdout.splitlines()
    assert lines[0] == "Id Refs Address                Size Name"
    assert lines[1].split()[0] == "1" and lines[1].endswith(" kernel")
    assert lines[1].split()[2] == "0xffffffff80200000"


def test_quiet_module_query_is_only_a_status(run_command):
    found = run_command("kldstat", "-q", "-m", "vmbus")
    assert (found.returncode, found.stdout, found.stderr) == (0, "", "")
    missing = run_command("kldstat", "-q", "-m", "if_wg")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "")
    loud = run_command("kldstat", "-m", "if_wg")
    assert loud.stderr == "kldstat: can't find module if_wg: No such file or directory\n"


def test_if_lagg_is_loaded_once_a_lagg_exists(run_command):
    assert run_command("kldstat", "-q", "-m", "if_lagg").returncode == 1
    run_command("ifconfig", "lagg0", "create")
    assert run_command("kldstat", "-q", "-m", "if_lagg").returncode == 0
    assert run_command("kldstat", "-q", "-n", "if_lagg.ko").returncode == 0
    verbose = run_command("kldstat", "-v").stdout
    assert "if_lagg.ko (/boot/kernel/if_lagg.ko)\n\tContains modules:\n" in verbose


@pytest.mark.parametrize("argv", [["-z"], ["-m"], ["extra"]])
def test_usage(run_command, argv):
    result = run_command("kldstat", *argv)
    assert result.returncode == 1 and result.stderr.endswith(USAGE)


def test_modules_loader_conf_loads_are_listed(run_command, kernel_dir):
    from hvbsd.sim.kernel import Kernel

    with Kernel(kernel_dir).transaction() as state:
        state.loader["if_lagg_load"] = "YES"
        state.loader["bogus_load"] = "NO"
    assert run_command("kldstat", "-q", "-m", "if_lagg").returncode == 0
    assert run_command("kldstat", "-q", "-m", "bogus").returncode == 1
    assert " if_lagg.ko\n" in run_command("kldstat").stdout


def test_no_simulated_kernel_is_one_line_and_status_1(run_command, tmp_path):
    missing = tmp_path / "no-kernel"
    result = run_command("kldstat", env={"HVBSD_SIM_KERNEL_DIR": str(missing)})
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"kldstat: no simulated kernel in {missing} (set HVBSD_SIM_KERNEL_DIR)\n",
    )
