"""kenv(1) as FreeBSD's bin/kenv/kenv.c: dump, get (-q, -v), set, unset, usage."""

from __future__ import annotations

import pytest

from hvbsd.sim.freebsd.kenv import USAGE


def test_dump_lists_the_loader_environment(run_command):
    result = run_command("kenv")
    assert result.returncode == 0
    assert 'smbios.system.product="Virtual Machine"\n' in result.stdout
    assert all(line.count('="') == 1 for line in result.stdout.splitlines())
    names = run_command("kenv", "-N").stdout.splitlines()
    assert "smbios.system.maker" in names and all("=" not in n for n in names)


def test_get_prints_the_value_or_fails_with_255(run_command):
    assert run_command("kenv", "smbios.system.maker").stdout == "Microsoft Corporation\n"
    verbose = run_command("kenv", "-v", "smbios.system.maker")
    assert verbose.stdout == 'smbios.system.maker="Microsoft Corporation"\n'
    missing = run_command("kenv", "rc.debug")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        255,
        "",
        "kenv: unable to get rc.debug\n",
    )
    # rc.subr: `if kenv -q rc.debug > /dev/null; then rc_debug=YES; fi`
    quiet = run_command("kenv", "-q", "rc.debug")
    assert (quiet.returncode, quiet.stderr) == (255, "")


def test_set_and_unset_change_the_kernel_environment(run_command):
    assert run_command("kenv", "rc.debug=1").stdout == 'rc.debug="1"\n'
    assert run_command("kenv", "-q", "rc.debug").stdout == "1\n"
    assert run_command("kenv", "-u", "rc.debug").returncode == 0
    assert run_command("kenv", "-q", "rc.debug").returncode == 255
    again = run_command("kenv", "-u", "rc.debug")
    assert (again.returncode, again.stderr) == (255, "kenv: unable to unset rc.debug\n")


def test_a_too_long_value_is_refused(run_command):
    result = run_command("kenv", "x=" + "v" * 200)
    assert (result.returncode, result.stderr) == (255, f"kenv: unable to set x to {'v' * 200}\n")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-z"], "kenv: illegal option -- z\n"),
        (["-u"], ""),
        (["-v"], ""),
        (["-N", "x"], ""),
        (["a", "b"], ""),
        (["-l", "-s"], ""),
    ],
)
def test_usage(run_command, argv, message):
    result = run_command("kenv", *argv)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + USAGE)


def test_static_environment_is_unavailable(run_command):
    result = run_command("kenv", "-s")
    expected = (255, "kenv: requested environment is unavailable\n")
    assert (result.returncode, result.stderr) == expected


@pytest.mark.parametrize("length, status", [(127, 0), (128, 255)])
def test_names_and_values_end_below_128_characters(run_command, length, status):
    # sys/kenv.h: KENV_MNAMELEN and KENV_MVALLEN are 128, terminating NUL included
    assert run_command("kenv", "n" * length + "=v").returncode == status
    assert run_command("kenv", "name=" + "v" * length).returncode == status


def test_no_simulated_kernel_is_one_line_and_status_1(run_command, tmp_path):
    missing = tmp_path / "no-kernel"
    result = run_command("kenv", env={"HVBSD_SIM_KERNEL_DIR": str(missing)})
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"kenv: no simulated kernel in {missing} (set HVBSD_SIM_KERNEL_DIR)\n",
    )
