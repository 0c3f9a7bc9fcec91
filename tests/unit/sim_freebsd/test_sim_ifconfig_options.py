"""ifconfig's leading options as FreeBSD's sbin/ifconfig/ifconfig.c args_parse reads them.

getopt(3) over "G:adDf:j:klmnuv" plus the options other files register
(ifclone.c "C", ifgroup.c "g:", af_inet6.c "L"): flags bundle (pccard_ether
runs ``ifconfig -ul``), ``-C`` lists the cloners and exits, ``-l`` refuses
``-a``/``-m``, ``-u`` refuses ``-d``, an unknown family is named, and every
refusal prints usage() and exits 1.
"""

from __future__ import annotations

import pytest

from hvbsd.sim.freebsd.ifconfig import CLONERS, USAGE


@pytest.mark.parametrize("flags", [["-ul"], ["-lu"], ["-l", "-u"], ["-u", "-l"]])
def test_bundled_up_and_list_flags(run_command, flags):
    run_command("ifconfig", "hn1", "up")
    result = run_command("ifconfig", *flags)
    assert (result.returncode, result.stdout, result.stderr) == (0, "lo0 hn1\n", "")


def test_bundled_down_list(run_command):
    run_command("ifconfig", "hn1", "up")
    assert run_command("ifconfig", "-ld").stdout == "hn0\n"
    assert run_command("ifconfig", "-dl").stdout == "hn0\n"


def test_bundled_all_up_shows_only_up_interfaces(run_command):
    run_command("ifconfig", "hn1", "up")
    status = run_command("ifconfig", "-au").stdout
    names = [line.split(":")[0] for line in status.splitlines() if not line.startswith("\t")]
    assert names == ["lo0", "hn1"]
    assert run_command("ifconfig", "-ua").stdout == status
    assert run_command("ifconfig", "-uav").stdout == status


def test_cloners_are_listed_not_interfaces(run_command):
    result = run_command("ifconfig", "-C")
    assert (result.returncode, result.stdout) == (0, " ".join(CLONERS) + "\n")
    assert "lagg" in result.stdout.split() and "hn0" not in result.stdout
    # clone_Copt_cb exits as getopt reaches -C: what follows is not looked at
    assert run_command("ifconfig", "-C", "-z").returncode == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-z"], "ifconfig: illegal option -- z\n"),
        (["-lz"], "ifconfig: illegal option -- z\n"),
        (["-f"], "ifconfig: option requires an argument -- f\n"),
        (["-la"], ""),
        (["-lm"], ""),
        (["-ud"], ""),
        (["-l", "-u", "-d"], ""),
        (["-G", "lagg"], ""),
        (["-l", "inet", "inet6"], ""),
        (["-l", "bogus"], "ifconfig: Address family 'bogus' unknown.\n"),
        (["-a", "bogus"], "ifconfig: Address family 'bogus' unknown.\n"),
    ],
)
def test_refused_options_print_usage_and_exit_1(run_command, argv, message):
    result = run_command("ifconfig", *argv)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + USAGE)


def test_list_by_family_names_interfaces_with_such_addresses(run_command):
    run_command("ifconfig", "hn1", "inet", "192.0.2.5/24")
    assert run_command("ifconfig", "-l", "inet").stdout.split() == ["lo0", "hn1"]
    assert "hn0" in run_command("ifconfig", "-l", "ether").stdout.split()


def test_groups(run_command):
    run_command("ifconfig", "lagg0", "create")
    members = run_command("ifconfig", "-g", "lagg")
    assert (members.returncode, members.stdout) == (0, "lagg0\n")
    assert run_command("ifconfig", "-g", "nosuch").stdout == ""
    status = run_command("ifconfig", "-a", "-g", "lagg").stdout
    assert status.startswith("lagg0: flags=") and "\nhn0:" not in status
    assert "lagg0:" not in run_command("ifconfig", "-a", "-G", "lagg").stdout
    assert run_command("ifconfig", "-aG", "lagg", "-l").returncode == 1


def test_options_end_at_the_interface_name(run_command):
    # -alias after the name is a parameter (no address to remove), not options -a -l...
    result = run_command("ifconfig", "hn0", "-alias")
    assert result.stderr == "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n"
    assert run_command("ifconfig", "-v", "hn0").stdout.startswith("hn0: flags=")


def test_jail_option_names_the_missing_jail(run_command):
    result = run_command("ifconfig", "-j", "web", "-l")
    assert (result.returncode, result.stderr) == (1, 'ifconfig: jail "web" not found\n')
