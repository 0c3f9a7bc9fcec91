"""sysrc(8) case by case: output, messages, exit status and the bytes written.

How the expected results were derived: each case was traced by hand through
FreeBSD's ``usr.sbin/sysrc/sysrc`` (version 7.3: the ``--help``/``--version``
scan, ``getopts aAcdDeEf:Fhij:lLnNqR:s:vxX`` with bin/sh's "Illegal option -%c"
and "No arg for -%c option", the ``-L`` block, the name validation
``${name%%:[+=-]*}``/``${name%%[%#+=-]*}``, ``-s``, ``-E``, ``-l``, the
taint check, the ``-x``/``-c`` versus ``-a`` checks, the ``-e``/``-n``/``-N``
rules, the ``-a``/``-A`` listing and the per-argument loop with its APPEND,
REMOVE and ASSIGN modes) and through the ``usr.sbin/sysrc/sysrc.subr``
functions it calls: ``f_sysrc_get`` (``${NAME}`` expanded after sourcing
``$RC_DEFAULTS`` and ``source_rc_confs``, so ``foo-bar`` is ``${foo-bar}``),
``f_sysrc_find`` (files searched last to first, then the defaults),
``f_sysrc_set`` (its awk: the value written inside the old assignment's own
quotes, what follows kept, ``awk -v`` escapes applied; the append branch
writes ``name="value"`` as given; leading empty lines lost to ``tail -r``),
``f_sysrc_delete`` (status 0 even when nothing matched), ``f_sysrc_desc``
(the comment of the defaults line and its continuation lines) and
``f_sysrc_service_configs``.  The tree below is the one every case starts
from; a case lists the files it changes, every other file must be unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hvbsd.sim.freebsd import sysrc

DEFAULTS = """rc_conf_files="{etc}/rc.conf {etc}/rc.conf.local"	# rc.conf files.
hostname=""		# Set this!
sshd_enable="NO"	# Enable sshd
ifconfig_lo0="inet 127.0.0.1"	# default loopback device configuration.
#ifconfig_lo0_alias0="inet 127.0.0.254 netmask 0xffffffff" # Sample alias entry.
cloned_interfaces=""		# List of cloned network interfaces to create.
			# (examples: lagg0 vlan0)
local_startup="{root}/usr/local/etc/rc.d"	# startup script dirs.
if [ -z "${{source_rc_confs_defined}}" ]; then
	source_rc_confs_defined=yes
	source_rc_confs() {{
		local i sourced_files
		for i in ${{rc_conf_files}}; do
			case ${{sourced_files}} in
			*:$i:*) ;;
			*) sourced_files="${{sourced_files}}:$i:"
				if [ -r $i ]; then . $i; fi ;;
			esac
		done
	}}
fi
"""
RC_CONF = """hostname="g1"
ifconfig_hn0="SYNCDHCP"	# the first NIC
foo='a b' # single
bare=plain # comment
empty=
list="x y z"
commas="a,b"
"""
RC_CONF_LOCAL = 'local_only="L"\n'
SERVICE_SCRIPT = (
    '#!/bin/sh\nname=mysvc\nrcvar=mysvc_enable\nload_rc_config $name\nrun_rc_command "$1"\n'
)
SERVICE_CONF = 'mysvc_flags="-x"\n'

R = "{etc}/rc.conf"
L = "{etc}/rc.conf.local"
D = "{etc}/defaults/rc.conf"
SVC = "{root}/usr/local/etc/rc.conf.d/mysvc"
USAGE = sysrc.USAGE
NAMES_A = ["bare", "commas", "empty", "foo", "hostname", "ifconfig_hn0", "list", "local_only"]
VALUES_A = ["plain", "a,b", "", "a b", "g1", "SYNCDHCP", "x y z", "L"]
FILES_A = [R, R, R, R, R, R, R, L]
NAMES_ALL = [
    "bare",
    "cloned_interfaces",
    "commas",
    "empty",
    "foo",
    "hostname",
    "ifconfig_hn0",
    "ifconfig_lo0",
    "list",
    "local_only",
    "local_startup",
    "rc_conf_files",
    "source_rc_confs_defined",
    "sshd_enable",
]


def _lines(pairs) -> str:
    return "".join(f"{a}{b}\n" for a, b in pairs)


def _rc(*replacements: tuple[str, str]) -> str:
    text = RC_CONF
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    return text


# (argv, status, stdout, stderr, {file: content}); stderr "~text" means "contains text".
CASES = {
    # -- reading -----------------------------------------------------------------------
    "get": (["hostname"], 0, "hostname: g1\n", "", {}),
    "get -n": (["-n", "hostname"], 0, "g1\n", "", {}),
    "get -e": (["-e", "hostname"], 0, 'hostname="g1"\n', "", {}),
    "-n cancels -e": (["-ne", "hostname"], 0, "g1\n", "", {}),
    "get -N": (["-N", "hostname"], 0, "hostname\n", "", {}),
    "-N wins over -n": (["-nN", "hostname"], 0, "hostname\n", "", {}),
    "get -v": (["-v", "hostname"], 0, f"{R}: hostname: g1\n", "", {}),
    "get -ve": (["-ve", "hostname"], 0, f': {R}; hostname="g1"\n', "", {}),
    "get -F": (["-F", "hostname"], 0, f"hostname: {R}\n", "", {}),
    "get -Fn": (["-Fn", "hostname"], 0, f"{R}\n", "", {}),
    "-F of a default": (["-F", "sshd_enable"], 0, f"sshd_enable: {D}\n", "", {}),
    "-F drops -e": (["-Fe", "hostname"], 0, f"hostname: {R}\n", "", {}),
    "default value": (["sshd_enable"], 0, "sshd_enable: NO\n", "", {}),
    "unknown": (["nosuch"], 1, "", "sysrc: unknown variable 'nosuch'\n", {}),
    "unknown -i": (["-i", "nosuch"], 1, "", "", {}),
    "unknown -q": (["-q", "nosuch"], 1, "", "", {}),
    "-v after -q speaks": (["-qv", "nosuch"], 1, "", "sysrc: unknown variable 'nosuch'\n", {}),
    "-q after -v is quiet": (["-vq", "nosuch"], 1, "", "", {}),
    "unknown -e": (["-e", "nosuch"], 1, "", "sysrc: unknown variable 'nosuch'\n", {}),
    "several, one unknown": (
        ["hostname", "nosuch", "sshd_enable"],
        1,
        "hostname: g1\nsshd_enable: NO\n",
        "sysrc: unknown variable 'nosuch'\n",
        {},
    ),
    "single-quoted value": (["foo"], 0, "foo: a b\n", "", {}),
    "bare value": (["bare"], 0, "bare: plain\n", "", {}),
    "empty value": (["empty"], 0, "empty: \n", "", {}),
    "from rc.conf.local": (["local_only"], 0, "local_only: L\n", "", {}),
    "-f limits the files": (["-f", R, "local_only"], 1, "", "~unknown variable 'local_only'", {}),
    "-D defaults only": (["-D", "hostname"], 0, "hostname: \n", "", {}),
    "-D hides rc.conf": (["-D", "local_only"], 1, "", "~unknown variable 'local_only'", {}),
    "-f other file": (["-f", L, "hostname"], 0, "hostname: \n", "", {}),
    "expansion %%": (["hostname%%1"], 0, "hostname%%1: g\n", "", {}),
    "foo-bar is ${foo-bar}, unset foo": (["nosuch-dflt"], 0, "nosuch-dflt: dflt\n", "", {}),
    "foo-bar is ${foo-bar}, set foo": (["foo-bar"], 0, "foo-bar: a b\n", "", {}),
    "empty name is $?": ([""], 0, ": \n", "", {}),
    "leading digit": (["9lives"], 1, "", "sysrc: unknown variable '9lives'\n", {}),
    "bad character": (
        ["bad.name"],
        1,
        "",
        "sysrc: bad.name: name contains characters not allowed in shell\n",
        {},
    ),
    "a bad name aborts the whole list first": (
        ["hostname", "sshd_enable=YES", "x y=1"],
        1,
        "",
        "sysrc: x y: name contains characters not allowed in shell\n",
        {},
    ),
    # -- setting -----------------------------------------------------------------------
    "set appends a default": (
        ["sshd_enable=YES"],
        0,
        "sshd_enable: NO -> YES\n",
        "",
        {R: RC_CONF + 'sshd_enable="YES"\n'},
    ),
    "set double-quoted": (
        ["hostname=g2"],
        0,
        "hostname: g1 -> g2\n",
        "",
        {R: _rc(('hostname="g1"', 'hostname="g2"'))},
    ),
    "set keeps the comment": (
        ["ifconfig_hn0=DHCP"],
        0,
        "ifconfig_hn0: SYNCDHCP -> DHCP\n",
        "",
        {R: _rc(('"SYNCDHCP"', '"DHCP"'))},
    ),
    "set keeps single quotes": (
        ["foo=c d"],
        0,
        "foo: a b -> c d\n",
        "",
        {R: _rc(("foo='a b'", "foo='c d'"))},
    ),
    "set quotes a bare value": (
        ["bare=new"],
        0,
        "bare: plain -> new\n",
        "",
        {R: _rc(("bare=plain", 'bare="new"'))},
    ),
    "set an empty assignment unquoted": (
        ["empty=v"],
        0,
        "empty:  -> v\n",
        "",
        {R: _rc(("empty=\n", "empty=v\n"))},
    ),
    "set -n": (["-n", "hostname=g2"], 0, "g1 -> g2\n", "", {R: _rc(('"g1"', '"g2"'))}),
    "set -e": (
        ["-e", "hostname=g2"],
        0,
        'hostname="g1" # -> "g2"\n',
        "",
        {R: _rc(('"g1"', '"g2"'))},
    ),
    "set -v": (
        ["-v", "hostname=g2"],
        0,
        f"{R}: hostname: g1 -> g2\n",
        "",
        {R: _rc(('"g1"', '"g2"'))},
    ),
    "set -v of a default names the first file": (
        ["-v", "sshd_enable=YES"],
        0,
        f"{R}: sshd_enable: NO -> YES\n",
        "",
        {R: RC_CONF + 'sshd_enable="YES"\n'},
    ),
    "set -ve": (
        ["-ve", "hostname=g2"],
        0,
        f': {R}; hostname="g1" # -> "g2"\n',
        "",
        {R: _rc(('"g1"', '"g2"'))},
    ),
    "set -N": (["-N", "hostname=g2"], 0, "hostname\n", "", {R: _rc(('"g1"', '"g2"'))}),
    "set -F": (
        ["-F", "hostname=g2"],
        0,
        f"hostname: {R} -> {R}\n",
        "",
        {R: _rc(('"g1"', '"g2"'))},
    ),
    "set -F of a default": (
        ["-F", "sshd_enable=YES"],
        0,
        f"sshd_enable: {D} -> {R}\n",
        "",
        {R: RC_CONF + 'sshd_enable="YES"\n'},
    ),
    "set where it is": (
        ["local_only=M"],
        0,
        "local_only: L -> M\n",
        "",
        {L: 'local_only="M"\n'},
    ),
    "set -f creates the file": (
        ["-f", "{root}/new.conf", "a=1"],
        0,
        "a:  -> 1\n",
        "",
        {"{root}/new.conf": 'a="1"\n'},
    ),
    "set -D has no file": (["-D", "x=1"], 1, "", "~cannot create : No such file or directory", {}),
    "set -E without files": (
        ["-E", "-f", "{root}/none", "x=1"],
        1,
        "",
        "~cannot create : No such file or directory",
        {},
    ),
    "set foo-bar finds foo, writes nothing": (
        ["foo-bar=x"],
        0,
        "foo-bar: a b -> a b\n",
        "",
        {R: RC_CONF},
    ),
    "set a new foo-bar appends it as given": (
        ["nosuch-x=1"],
        0,
        "nosuch-x: x -> x\n",
        "",
        {R: RC_CONF + 'nosuch-x="1"\n'},
    ),
    "set a $ assignment appends a new one": (
        ["dyn=x"],
        0,
        "dyn: g1 -> x\n",
        "",
        {R: RC_CONF + "dyn=$hostname\n" + 'dyn="x"\n'},
        {R: RC_CONF + "dyn=$hostname\n"},
    ),
    "awk -v turns \\t into a tab": (
        ["hostname=a\\tb"],
        0,
        "hostname: g1 -> a\tb\n",
        "",
        {R: _rc(('"g1"', '"a\tb"'))},
    ),
    "the append branch writes \\t as given": (
        ["newv=a\\tb"],
        0,
        "newv:  -> a\\tb\n",
        "",
        {R: RC_CONF + 'newv="a\\tb"\n'},
    ),
    "a quote that breaks the file is refused": (
        ['hostname=a"b'],
        1,
        "",
        f"sysrc: Not overwriting `{R}' due to previous syntax errors\n",
        {},
    ),
    "the append branch is not checked": (
        ['newv=a"b'],
        0,
        "newv:  -> \n",
        "",
        {R: RC_CONF + 'newv="a"b"\n'},
    ),
    "leading empty lines are lost": (
        ["hostname=g2"],
        0,
        "hostname: g1 -> g2\n",
        "",
        {R: 'hostname="g2"\nx="1"\n'},
        {R: '\n\nhostname="g1"\nx="1"\n'},
    ),
    "a missing last newline is added before appending": (
        ["sshd_enable=YES"],
        0,
        "sshd_enable: NO -> YES\n",
        "",
        {R: 'hostname="g1"\nsshd_enable="YES"\n'},
        {R: 'hostname="g1"'},
    ),
    "the last of several assignments changes": (
        ["hostname=g3"],
        0,
        "hostname: g2 -> g3\n",
        "",
        {R: 'hostname="g1"\nhostname="g3"\n'},
        {R: 'hostname="g1"\nhostname="g2"\n'},
    ),
    "indented assignment": (
        ["hostname=g3"],
        0,
        "hostname: g1 -> g3\n",
        "",
        {R: '\t hostname="g3" # x\n'},
        {R: '\t hostname="g1" # x\n'},
    ),
    "several at once": (
        ["hostname=g2", "sshd_enable=YES", "hostname"],
        0,
        "hostname: g1 -> g2\nsshd_enable: NO -> YES\nhostname: g2\n",
        "",
        {R: _rc(('"g1"', '"g2"')) + 'sshd_enable="YES"\n'},
    ),
    # -- += and -= ---------------------------------------------------------------------
    "+= to an empty default": (
        ["cloned_interfaces+=lagg0"],
        0,
        "cloned_interfaces:  -> lagg0\n",
        "",
        {R: RC_CONF + 'cloned_interfaces="lagg0"\n'},
    ),
    "+= adds a word": (
        ["list+=w"],
        0,
        "list: x y z -> x y z w\n",
        "",
        {R: _rc(('"x y z"', '"x y z w"'))},
    ),
    "+= of a present word": (["list+=y"], 0, "list: x y z -> x y z\n", "", {R: RC_CONF}),
    "+= compares with the old words only": (
        ["list+=w w"],
        0,
        "list: x y z -> x y z w w\n",
        "",
        {R: _rc(('"x y z"', '"x y z w w"'))},
    ),
    "+= of nothing": (["list+="], 0, "list: x y z -> x y z\n", "", {R: RC_CONF}),
    "-= removes a word": (
        ["list-=y"],
        0,
        "list: x y z -> x z\n",
        "",
        {R: _rc(('"x y z"', '"x z"'))},
    ),
    "-= of an absent word": (["list-=q"], 0, "list: x y z -> x y z\n", "", {R: RC_CONF}),
    "+= with a comma delimiter": (
        ["commas+=,c"],
        0,
        "commas: a,b -> a,b,c\n",
        "",
        {R: _rc(('"a,b"', '"a,b,c"'))},
    ),
    "-= with a comma delimiter": (
        ["commas-=,a"],
        0,
        "commas: a,b -> b\n",
        "",
        {R: _rc(('"a,b"', '"b"'))},
    ),
    "+= to an unset variable": (
        ["nosuch+=a"],
        0,
        "nosuch:  -> a\n",
        "",
        {R: RC_CONF + 'nosuch="a"\n'},
    ),
    # -- -c ----------------------------------------------------------------------------
    "-c same": (["-c", "hostname=g1"], 0, "", "", {}),
    "-c differs": (["-c", "hostname=g2"], 1, "", "", {}),
    "-vc differs": (
        ["-vc", "hostname=g2"],
        1,
        f"{R}: hostname: would change from `g1' to `g2'\n",
        "",
        {},
    ),
    "-vc same": (["-vc", "hostname=g1"], 0, f"{R}: hostname: already set to `g1'\n", "", {}),
    "-vc unset": (["-vc", "nosuch=1"], 1, "nosuch: not currently set\n", "", {}),
    "-c of a name": (["-c", "hostname"], 0, "", "", {}),
    "-c of an unknown name": (["-c", "nosuch"], 1, "", "sysrc: unknown variable 'nosuch'\n", {}),
    "-c += present": (["-c", "list+=x"], 0, "", "", {}),
    "-c += absent": (["-c", "list+=w"], 1, "", "", {}),
    # -- -x ----------------------------------------------------------------------------
    "-x": (["-x", "hostname"], 0, "", "", {R: RC_CONF.replace('hostname="g1"\n', "")}),
    "-x unknown": (["-x", "nosuch"], 1, "", "sysrc: unknown variable 'nosuch'\n", {}),
    "-x of a default touches nothing": (["-x", "sshd_enable"], 0, "", "", {}),
    "-x name=value deletes without asking": (["-x", "nosuch=1"], 0, "", "", {}),
    "-xv name=value": (
        ["-xv", "hostname=1"],
        0,
        f"{R}: ",
        "",
        {R: RC_CONF.replace('hostname="g1"\n', "")},
    ),
    "-x empties rc.conf.local": (["-x", "local_only"], 0, "", "", {L: ""}),
    "-x every assignment": (
        ["-x", "hostname"],
        0,
        "",
        "",
        {R: "x=1\n", L: "\n"},
        {R: 'hostname="g1"\nx=1\nhostname="g2"\n', L: '\nhostname="g3"\n'},
    ),
    "-x with -a": (
        ["-x", "-a"],
        1,
        "",
        "sysrc: `-x' option incompatible with `-a'/`-A' options (use `-X' to override)\n",
        {},
    ),
    "-X with -a deletes all": (["-X", "-a"], 0, "", "", {R: "", L: ""}),
    "-c with -a": (
        ["-c", "-a"],
        1,
        "",
        "sysrc: `-c' option incompatible with `-a'/`-A' options\n",
        {},
    ),
    # -- -d ----------------------------------------------------------------------------
    "-d": (["-d", "sshd_enable"], 0, "sshd_enable: Enable sshd\n", "", {}),
    "-d joins continuation comments": (
        ["-d", "cloned_interfaces"],
        0,
        "cloned_interfaces: List of cloned network interfaces to create. (examples: lagg0 vlan0)\n",
        "",
        {},
    ),
    "-d stops at a commented assignment": (
        ["-d", "ifconfig_lo0"],
        0,
        "ifconfig_lo0: default loopback device configuration.\n",
        "",
        {},
    ),
    "-d then set": (
        ["-d", "hostname=x"],
        0,
        "hostname: Set this!\nhostname: g1 -> x\n",
        "",
        {R: _rc(('"g1"', '"x"'))},
    ),
    "-d unknown": (["-d", "nosuch"], 1, "nosuch: \n", "sysrc: unknown variable 'nosuch'\n", {}),
    # -- -a and -A ---------------------------------------------------------------------
    "-a": (["-a"], 0, _lines(zip([f"{n}: " for n in NAMES_A], VALUES_A)), "", {}),
    "-a ignores names": (
        ["-a", "hostname"],
        0,
        _lines(zip([f"{n}: " for n in NAMES_A], VALUES_A)),
        "",
        {},
    ),
    "-aN": (["-aN"], 0, _lines(zip(NAMES_A, [""] * 8)), "", {}),
    "-an": (["-an"], 0, _lines(zip(VALUES_A, [""] * 8)), "", {}),
    "-ae": (
        ["-ae"],
        0,
        _lines(zip([f'{n}="' for n in NAMES_A], [f'{v}"' for v in VALUES_A])),
        "",
        {},
    ),
    "-aF": (["-aF"], 0, _lines(zip([f"{n}: " for n in NAMES_A], FILES_A)), "", {}),
    "-av": (
        ["-av"],
        0,
        _lines(zip([f"{f}: {n}: " for f, n in zip(FILES_A, NAMES_A)], VALUES_A)),
        "",
        {},
    ),
    "-A": (
        ["-AN"],
        0,
        _lines(zip(NAMES_ALL, [""] * len(NAMES_ALL))),
        "",
        {},
    ),
    "-A values": (
        ["-A"],
        0,
        "bare: plain\ncloned_interfaces: \ncommas: a,b\nempty: \nfoo: a b\nhostname: g1\n"
        "ifconfig_hn0: SYNCDHCP\nifconfig_lo0: inet 127.0.0.1\nlist: x y z\nlocal_only: L\n"
        f"local_startup: {{root}}/usr/local/etc/rc.d\nrc_conf_files: {R} {L}\n"
        "source_rc_confs_defined: yes\nsshd_enable: NO\n",
        "",
        {},
    ),
    "-aD lists nothing": (["-aD"], 0, "", "", {}),
    # -- -l ----------------------------------------------------------------------------
    "-l": (["-l"], 0, f"{R} {L}\n", "", {}),
    "-l with a name": (["-l", "hostname"], 1, "", USAGE, {}),
    "-lD": (["-lD"], 0, f"{D}\n", "", {}),
    "-lE": (["-lE"], 0, f"{R}\n", "", {}, {L: None}),
    "-lE of missing files": (["-lE", "-f", "{root}/none"], 0, "\n", "", {}),
    "-l of two -f": (["-f", "a", "-f", "b", "-l"], 0, "a b\n", "", {}),
    # -- usage -------------------------------------------------------------------------
    "no arguments": ([], 1, "", USAGE, {}),
    "-h": (["-h"], 1, "", USAGE, {}),
    "--help": (["--help"], 1, "", "~\t-L         List all configuration files including", {}),
    "--version": (["--version"], 1, "7.3 Sep-15,2026\n", "", {}),
    "--version anywhere": (["hostname", "--version"], 1, "7.3 Sep-15,2026\n", "", {}),
    "--help before --": (["-n", "--help", "--"], 1, "", "~ENVIRONMENT:\n", {}),
    "unknown option": (["-z"], 1, "", "Illegal option -z\n" + USAGE, {}),
    "missing argument": (["-f"], 1, "", "No arg for -f option\n" + USAGE, {}),
    "null -j": (["-j", "", "x"], 1, "", "sysrc: Missing or null argument to `-j' flag\n", {}),
    "null -R": (["-R", "", "x"], 1, "", "sysrc: Missing or null argument to `-R' flag\n", {}),
    "null -s": (["-s", "", "x"], 1, "", "sysrc: Missing or null argument to `-s' flag\n", {}),
    "only --": (["--"], 1, "", USAGE, {}),
    "only flags": (["-n"], 1, "", USAGE, {}),
    "syntax error in rc.conf": (
        ["hostname"],
        1,
        "",
        "~sysrc: Exiting due to previous syntax errors\n",
        {},
        {R: 'hostname="g1\n'},
    ),
    "-j has no jails": (["-j", "web", "hostname"], 1, "", 'jexec: jail "web" not found\n', {}),
    "-R of a missing directory": (
        ["-R", "{root}/nowhere", "hostname"],
        1,
        "",
        "chroot: {root}/nowhere: No such file or directory\n",
        {},
    ),
    # -- services: -s and -L -----------------------------------------------------------
    "-L": (["-L", "mysvc"], 0, f"/etc/rc.conf.d/mysvc {SVC}\n", "", {}),
    "-Lv": (["-Lv", "mysvc"], 0, f"mysvc: /etc/rc.conf.d/mysvc {SVC}\n", "", {}),
    "-Le": (["-Le", "mysvc"], 0, f'mysvc="/etc/rc.conf.d/mysvc {SVC}"\n', "", {}),
    "-LE": (["-LE", "mysvc"], 0, f"{SVC}\n", "", {}),
    "-L unknown service": (["-L", "nosvc"], 1, "", "", {}),
    "-s reads rc.conf.d": (["-s", "mysvc", "mysvc_flags"], 0, "mysvc_flags: -x\n", "", {}),
    "without -s rc.conf.d is not read": (
        ["mysvc_flags"],
        1,
        "",
        "sysrc: unknown variable 'mysvc_flags'\n",
        {},
    ),
    "-s sets in rc.conf.d": (
        ["-s", "mysvc", "mysvc_flags=-y"],
        0,
        "mysvc_flags: -x -> -y\n",
        "",
        {SVC: 'mysvc_flags="-y"\n'},
    ),
    "service enable: -vs": (
        ["-vs", "mysvc", "mysvc_enable=YES"],
        0,
        f"{R}: mysvc_enable:  -> YES\n",
        "",
        {R: RC_CONF + 'mysvc_enable="YES"\n'},
    ),
    "service delete: -lEs": (["-lEs", "mysvc"], 0, f"{R} {L} {SVC}\n", "", {}),
    "-s of an unknown service": (["-s", "nosvc", "hostname"], 0, "hostname: g1\n", "", {}),
}


def _tree(root: Path) -> dict[str, str]:
    etc = root / "etc"
    names = {"root": str(root), "etc": str(etc)}
    files = {
        D: DEFAULTS,
        R: RC_CONF,
        L: RC_CONF_LOCAL,
        "{root}/usr/local/etc/rc.d/mysvc": SERVICE_SCRIPT,
        SVC: SERVICE_CONF,
    }
    return {
        key.format(**names): value.format(**names) if key == D else value
        for key, value in files.items()
    }


def _expand(text: str, root: Path) -> str:
    return text.replace("{root}", str(root)).replace("{etc}", str(root / "etc"))


def _snapshot(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found[str(path)] = path.read_text()
    return found


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_sysrc_case_matches_freebsd(case, tmp_path, monkeypatch, capfd):
    argv, status, stdout, stderr, changed, *setup = CASES[case]
    root = tmp_path / "root"
    files = _tree(root)
    for path, content in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    Path(_expand("{root}/usr/local/etc/rc.d/mysvc", root)).chmod(0o755)
    for path, content in (setup[0] if setup else {}).items():
        target = Path(_expand(path, root))
        if content is None:
            target.unlink()
        else:
            target.write_text(content)
    before = _snapshot(root)
    monkeypatch.setenv("RC_DEFAULTS", _expand(D, root))
    monkeypatch.delenv("RC_CONFS", raising=False)
    monkeypatch.chdir(tmp_path)
    result = sysrc.main([_expand(word, root) for word in argv])
    out, err = capfd.readouterr()
    assert (result, out) == (status, _expand(stdout, root))
    if stderr.startswith("~"):
        assert _expand(stderr[1:], root) in err
    else:
        assert err == _expand(stderr, root)
    expected = dict(before)
    expected.update({_expand(path, root): content for path, content in changed.items()})
    assert _snapshot(root) == expected


def test_there_are_at_least_75_cases():
    assert len(CASES) >= 75


def test_every_documented_option_has_a_case():
    used = set()
    for argv, *_ in CASES.values():
        for word in argv:
            if word.startswith("-") and not word.startswith("--"):
                used.update(word[1:])
            elif word in ("--help", "--version"):
                used.add(word)
    letters = set(sysrc.OPTSTRING.replace(":", ""))
    assert letters | {"--help", "--version"} <= used


def test_environment_rc_confs_is_used(tmp_path, monkeypatch, capfd):
    root = tmp_path / "root"
    for path, content in _tree(root).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    monkeypatch.setenv("RC_DEFAULTS", _expand(D, root))
    monkeypatch.setenv("RC_CONFS", _expand(L, root))
    assert sysrc.main(["local_only", "hostname"]) == 0
    assert capfd.readouterr().out == "local_only: L\nhostname: \n"
    monkeypatch.setenv("RC_CONFS", "")
    assert sysrc.main(["-l"]) == 0
    assert capfd.readouterr().out == "\n"
    assert os.environ["RC_CONFS"] == ""
