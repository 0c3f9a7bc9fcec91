"""`hvbsd lint`: exit codes, FILE:LINE messages, devd hazards, shell scripts via shellcheck."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hvbsd import releases
from hvbsd.devd import cli as devd_cli

BASE = Path(__file__).resolve().parents[3] / "src/hvbsd/sim/freebsd/base"


def lint(*paths, capsys) -> tuple[int, list[str], str]:
    parser = argparse.ArgumentParser(prog="hvbsd")
    devd_cli.register(parser.add_subparsers())
    args = parser.parse_args(["lint", *map(str, paths)])
    status = args.func(args)
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def write(directory: Path, name: str, text: str, mode: int = 0o644) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


GOOD = (
    'notify 20 {\n\tmatch "system" "DEVFS";\n\tmatch "cdev" "hv_kvp_dev";\n'
    '\taction "x $cdev";\n};\n'
)


def test_clean_file_exits_zero_silently(tmp_path, capsys):
    status, out, err = lint(write(tmp_path, "good.conf", GOOD), capsys=capsys)
    assert (status, out, err) == (0, [], "")


def test_syntax_error_is_reported_as_file_line_and_exit_one(tmp_path, capsys):
    path = write(tmp_path, "bad.conf", 'notify 0 {\n\tmatch "a" "b"\n};\n')
    status, out, err = lint(path, capsys=capsys)
    assert status == 1
    assert out == [f"{path}:3: error: expected ';' after the match statement, found '}}'"]
    assert "1 problem(s) in 1 file(s)" in err


def test_bad_regex_is_an_error_at_its_line(tmp_path, capsys):
    path = write(tmp_path, "re.conf", 'notify 0 {\n\tmatch "cdev" "hv_[[:word:]]+";\n};\n')
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert out[0].startswith(f"{path}:2: error: bad regular expression")
    assert "unknown character class [:word:]" in out[0]


def test_brace_variable_in_action_is_a_warning(tmp_path, capsys):
    path = write(tmp_path, "brace.conf",
                 'notify 0 {\n\tmatch "system" "X";\n\taction "vfup ${subsystem}";\n};\n')
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert out == [
        f"{path}:3: warning: action uses ${{subsystem}}: devd passes it to sh as written and "
        "sh expands it to an empty string; write $subsystem"
    ]


def test_escaped_dollar_brace_is_not_flagged(tmp_path, capsys):
    path = write(tmp_path, "ok.conf", 'notify 0 { match "a" "b"; action "x $${HOME}"; };\n')
    assert lint(path, capsys=capsys)[0] == 0


VM_GUEST_RULE = ('notify 10 {\n\tmatch "system" "ETHERNET";\n\tmatch "vm_guest" "hv";\n'
                 '\taction "x";\n};\n')


def without_vm_guest() -> list[str]:
    return [release.name for release in releases.supported() if not release.devd_vm_guest]


def test_vm_guest_match_warns_naming_every_release_whose_devd_lacks_it(tmp_path, capsys):
    path = write(tmp_path, "vm.conf", VM_GUEST_RULE)
    status, out, _ = lint(path, capsys=capsys)
    names = without_vm_guest()
    if not names:
        assert (status, out) == (0, [])
        return
    assert status == 1
    assert out == [
        f'{path}:3: warning: match "vm_guest": devd of FreeBSD {", ".join(names)} sets no '
        "vm_guest variable, so this rule never fires there; check sysctl kern.vm_guest in "
        "the action"
    ]


@pytest.mark.parametrize("release", releases.names())
def test_vm_guest_match_warns_only_for_a_release_whose_devd_lacks_it(tmp_path, capsys, release):
    path = write(tmp_path, "vm.conf", VM_GUEST_RULE)
    status, out, _ = lint("--release", release, path, capsys=capsys)
    if releases.get(release).devd_vm_guest:
        assert (status, out) == (0, [])
    else:
        assert status == 1
        assert out == [
            f'{path}:3: warning: match "vm_guest": devd of FreeBSD {release} sets no vm_guest '
            "variable, so this rule never fires there; check sysctl kern.vm_guest in the action"
        ]


def test_negated_vm_guest_match_is_said_to_always_hold_where_devd_lacks_it(tmp_path, capsys):
    names = without_vm_guest()
    if not names:
        pytest.skip("every supported release's devd sets vm_guest")
    path = write(tmp_path, "vm.conf", 'notify 10 {\n\tmatch "vm_guest" "!hv";\n\taction "x";\n};\n')
    status, out, _ = lint("--release", names[0], path, capsys=capsys)
    assert status == 1
    assert "so this match always holds there (the rule then fires on any guest)" in out[0]


@pytest.mark.parametrize("given", ["9.9", "14.3", "15", "latest", "-1", "14.4\n"])
def test_unknown_release_is_one_line_and_exit_two(tmp_path, capsys, given):
    path = write(tmp_path, "vm.conf", VM_GUEST_RULE)
    status, out, err = lint("--release", given, path, capsys=capsys)
    assert (status, out) == (2, [])
    assert len(err.splitlines()) == 1
    assert err.startswith("hvbsd lint: --release: release ")
    assert ", ".join(releases.names()) in err


def test_unknown_release_from_the_command_line_exits_two_with_one_line(tmp_path):
    path = write(tmp_path, "vm.conf", VM_GUEST_RULE)
    result = run_lint("--release", "13.2", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "hvbsd supports FreeBSD" in result.stderr


def test_crlf_file_is_read_as_devd_reads_it_and_warned_about(tmp_path, capsys):
    path = tmp_path / "win.conf"
    path.write_bytes(b'notify 10 {\r\n\tmatch "system" "IFNET";\r\n'
                     b'\taction "a \\\r\n\tb";\r\n};\r\n')
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert out[0].startswith(f"{path}:1: warning: CR (a Windows line end) here and on 3 more")
    assert out[1] == (f"{path}:3: warning: action holds a CR, which devd keeps in the command it "
                      "hands to sh (a backslash before CRLF does not continue the line)")
    assert len(out) == 2


def rule(priority: int, cdev: str) -> str:
    return (f'notify {priority} {{\n\tmatch "system" "DEVFS";\n\tmatch "type" "CREATE";\n'
            f'\tmatch "cdev" "{cdev}";\n\taction "run";\n}};\n')


def test_equal_priority_with_another_files_rule_for_the_same_event_is_a_warning(tmp_path, capsys):
    stock = write(tmp_path, "hyperv.conf", rule(11, "hv_fsvss_dev"))
    ours = write(tmp_path, "hvbsd.conf", "\n" + rule(11, "hv_(fs|app)vss_dev"))
    status, out, _ = lint(stock, ours, capsys=capsys)
    assert status == 1
    assert out == [
        f"{ours}:2: warning: notify 11 has the same priority as the rule at {stock}:1 and "
        "both can match the same event: which one runs depends on the order devd reads the "
        "files (readdir order); use a higher priority"
    ]


def test_equal_priority_is_fine_for_disjoint_events_same_file_or_higher_priority(
    tmp_path, capsys
):
    stock = write(tmp_path, "hyperv.conf", rule(10, "hv_kvp_dev"))
    other_event = write(tmp_path, "a.conf", rule(10, "hv_fsvss_dev"))
    higher = write(tmp_path, "b.conf", rule(11, "hv_kvp_dev"))
    same_file = write(tmp_path, "c.conf", rule(5, "x") + rule(5, "x"))
    assert lint(stock, other_event, higher, same_file, capsys=capsys)[:2] == (0, [])


def test_other_devd_traps_are_warnings(tmp_path, capsys):
    path = write(tmp_path, "traps.conf",
                 'notify 0 {\n\tmatch "subsystem" "hn0|hn1";\n\taction "a";\n};\n'
                 'notify 0 {\n\tmatch "subsystem" "$nic-regex";\n\taction "a";\n};\n'
                 'notify 0 {\n\tmedia-type "fddi";\n\taction "a";\n};\n'
                 "notify 5 {\n};\n")
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert [line.split(": ", 2)[0] for line in out] == [f"{path}:{n}" for n in (2, 6, 10, 13)]
    assert "'|' outside parentheses" in out[0]
    assert "$nic-regex in the regex of match \"subsystem\" is not defined" in out[1]
    assert 'media-type "fddi" is unknown' in out[2]
    assert "empty notify block: devd ignores it" in out[3]


def test_set_variables_carry_over_from_earlier_files(tmp_path, capsys):
    main = write(tmp_path, "devd.conf", 'options { set nic-regex "hn[0-9]+"; };\n')
    user = write(tmp_path, "user.conf",
                 'notify 0 { match "subsystem" "$nic-regex"; action "a"; };\n')
    assert lint(main, user, capsys=capsys)[:2] == (0, [])


CLEAN_SCRIPT = '#!/bin/sh\n# demo\nset -eu\niface="$1"\nlogger -t hvbsd "vf up on ${iface}"\n'


def test_clean_shell_script_passes(tmp_path, capsys):
    assert lint(write(tmp_path, "vfup", CLEAN_SCRIPT, 0o755), capsys=capsys)[:2] == (0, [])


def test_shellcheck_findings_are_reported_with_their_line(tmp_path, capsys):
    path = write(tmp_path, "vfup", "#!/bin/sh\n\nifconfig $1 up\n", 0o755)
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert any(line.startswith(f"{path}:3: ") and "SC2086" in line for line in out), out


def test_shell_syntax_error_is_reported_by_sh_n(tmp_path, capsys):
    path = write(tmp_path, "broken", "#!/bin/sh\nif true; then\n  echo x\n", 0o755)
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert any(line.startswith(f"{path}:") and ": error: sh -n:" in line for line in out), out


def test_missing_shellcheck_is_a_usage_error(tmp_path, capsys, monkeypatch):
    script = write(tmp_path, "vfup", CLEAN_SCRIPT, 0o755)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python3"))
    status, out, err = lint(script, capsys=capsys)
    assert (status, out) == (2, [])
    assert "shellcheck not found" in err


def test_directory_lints_its_conf_files_and_scripts_only(tmp_path, capsys):
    write(tmp_path, "a.conf", 'notify 0 {\n\tbogus;\n};\n')
    write(tmp_path, "vfup", "#!/bin/sh\necho $1\n", 0o755)
    write(tmp_path, "README", "not linted\n")
    write(tmp_path, "tool.py", "#!/usr/bin/env python3\n")
    status, out, _ = lint(tmp_path, capsys=capsys)
    assert status == 1
    files = sorted({line.split(":", 1)[0] for line in out})
    assert files == [str(tmp_path / "a.conf"), str(tmp_path / "vfup")]


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (lambda d: d / "nope.conf", "no such file or directory"),
        (lambda d: write(d, "notes.txt", "hello\n"), "not a devd file (*.conf) nor a shell script"),
    ],
)
def test_unlintable_arguments_exit_two(tmp_path, capsys, make, complaint):
    status, out, err = lint(make(tmp_path), capsys=capsys)
    assert (status, out) == (2, [])
    assert complaint in err


def test_output_is_deterministic(tmp_path, capsys):
    write(tmp_path, "x.conf", 'notify 1 { match "vm_guest" "hv"; action "${a} ${b}"; };\n')
    write(tmp_path, "y.conf", 'notify 1 { match "vm_guest" "hv"; action "c"; };\n')
    first = lint(tmp_path, capsys=capsys)
    assert first == lint(tmp_path, capsys=capsys)
    vm_guest = 2 if without_vm_guest() else 0  # x and y, where some release lacks it
    assert len(first[1]) == 3 + vm_guest  # x: ${a}, ${b}; y: equal priority


@pytest.mark.parametrize("release", releases.names())
def test_each_releases_stock_files_are_clean_for_that_release(release):
    stock = BASE / releases.get(release).stock / "etc"
    if not (stock / "devd.conf").is_file():
        pytest.skip(f"no simulated stock tree {stock} (yet)")
    result = subprocess.run(
        [sys.executable, "-m", "hvbsd", "lint", "--release", release, str(stock / "devd.conf"),
         str(stock / "devd")],
        capture_output=True, text=True, check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hvbsd_lint_command_reports_problems_with_exit_one(tmp_path):
    path = write(tmp_path, "bad.conf", "frob 1 {};\n")
    result = subprocess.run([sys.executable, "-m", "hvbsd", "lint", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:1: error: unknown statement 'frob'")


# -- hostile names, regexes and sizes (issue 10, item 7) ---------------------


def run_lint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hvbsd", "lint", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("given", [["./-V", "./-n"], ["--", "-V", "-n"]],
                         ids=["dot-slash", "after-dashdash"])
def test_scripts_named_like_options_are_linted_not_read_as_options(tmp_path, given):
    write(tmp_path, "-V", "#!/bin/sh\necho $1\n", 0o755)
    write(tmp_path, "-n", "#!/bin/sh\nif true; then\n  echo x\n", 0o755)
    result = run_lint(*given, cwd=tmp_path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    version, syntax = given[-2:]
    assert any(line.startswith(f"{version}:2: ") and "SC2086" in line for line in lines), lines
    assert any(line.startswith(f"{syntax}:4: error: sh -n: ") for line in lines), lines


def test_a_conf_file_named_like_an_option_is_linted(tmp_path):
    write(tmp_path, "-f.conf", 'notify 0 { match "vm_guest" "hv"; action "x"; };\n')
    result = run_lint("./-f.conf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("./-f.conf:1: warning: match \"vm_guest\"")


def test_nested_repetition_against_a_long_literal_is_decided_at_once(tmp_path, capsys):
    regex = write(tmp_path, "a.conf", 'notify 5 { match "subsystem" "(a+)+$"; action "a"; };\n')
    literal = write(tmp_path, "b.conf",
                    f'notify 5 {{ match "subsystem" "{"a" * 40}!"; action "b"; }};\n')
    same = write(tmp_path, "c.conf", f'notify 5 {{ match "subsystem" "{"a" * 40}"; }};\n')
    status, out, _ = lint(regex, literal, same, capsys=capsys)
    # "aaa...a!" cannot match ^(a+)+$ (disjoint); "aaa...a" can (a tie with a.conf)
    assert status == 1
    assert len(out) == 1 and out[0].startswith(f"{same}:1: warning: notify 5 has the same")
    assert f"the rule at {regex}:1" in out[0]


def test_a_regex_too_large_to_evaluate_is_reported_as_a_hazard(tmp_path, capsys):
    path = write(tmp_path, "big.conf",
                 'notify 0 {\n\tmatch "cdev" "((a{255}){255}){255}";\n\taction "a";\n};\n')
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert len(out) == 1
    assert out[0].startswith(f"{path}:2: warning: hazard: match \"cdev\"")
    assert "automaton states" in out[0] and "does not evaluate it" in out[0]


def test_a_match_over_budget_is_a_hazard_and_counts_as_a_possible_tie(tmp_path, capsys):
    rng = random.Random(3)
    value = "".join(rng.choice("ab") for _ in range(6000))
    regex = write(tmp_path, "a.conf", 'notify 3 {\n\tmatch "cdev" "(a|b)*a(a|b){255}c";\n};\n')
    literal = write(tmp_path, "b.conf", f'notify 3 {{ match "cdev" "{value}"; }};\n')
    status, out, _ = lint(regex, literal, capsys=capsys)
    assert status == 1
    assert any(line.startswith(f"{regex}:2: warning: hazard: matching") and "steps" in line
               for line in out), out
    assert any(line.startswith(f"{literal}:1: warning: notify 3 has the same priority")
               for line in out), out


def test_equal_priority_ties_are_one_line_per_file_pair_with_a_count(tmp_path, capsys):
    many = "".join(f'notify 7 {{ match "system" "IFNET"; action "a{n}"; }};\n'
                   for n in range(3000))
    first = write(tmp_path, "first.conf", many)
    second = write(tmp_path, "second.conf", many)
    third = write(tmp_path, "third.conf", 'notify 7 { match "system" "DEVFS"; };\n')
    status, out, _ = lint(first, second, third, capsys=capsys)
    assert status == 1
    assert out == [
        f"{second}:1: warning: 3000 rules have the same kind and priority as rules of "
        f"{first} and can match the same events (the first: notify 7, like the rule at "
        f"{first}:1): which one runs depends on the order devd reads the files "
        "(readdir order); use a higher priority"
    ]


def test_equal_priority_rules_for_different_literal_values_are_no_tie(tmp_path, capsys):
    first = write(tmp_path, "first.conf", "".join(
        f'notify 7 {{ match "cdev" "a{n}"; action "a"; }};\n' for n in range(3000)))
    second = write(tmp_path, "second.conf", "".join(
        f'notify 7 {{ match "cdev" "b{n}"; action "b"; }};\n' for n in range(3000)))
    assert lint(first, second, capsys=capsys)[:2] == (0, [])


def test_five_thousand_nested_parentheses_are_linted_without_a_traceback(tmp_path):
    deep = "(" * 5000 + "hn0" + ")" * 5000
    write(tmp_path, "deep.conf", f'notify 0 {{ match "subsystem" "{deep}"; action "a"; }};\n')
    write(tmp_path, "open.conf", f'notify 0 {{ match "cdev" "{"(" * 5000}x"; }};\n')
    result = run_lint("deep.conf", "open.conf", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "open.conf:1: error: bad regular expression in match \"cdev\" "
        f"\"{'(' * 57}...\" (compiled as '{'^' + '(' * 56}...'): unmatched '('"
    ]


def test_a_recursion_error_is_one_line_and_exit_two(tmp_path, capsys, monkeypatch):
    from hvbsd.devd import lint as lint_module

    def too_deep(*_args, **_kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(lint_module, "lint_paths", too_deep)
    status, out, err = lint(write(tmp_path, "a.conf", GOOD), capsys=capsys)
    assert (status, out) == (2, [])
    assert err == ("hvbsd lint: a file is nested too deeply to check (Python's recursion "
                   "limit); nothing was checked\n")


def test_devices_fifos_and_symlinks_to_them_are_never_read(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.conf")
    (tmp_path / "zero.conf").symlink_to("/dev/zero")
    write(tmp_path, "good.conf", GOOD)
    assert lint(tmp_path, capsys=capsys)[:2] == (0, [])
    status, out, err = lint(tmp_path / "fifo.conf", capsys=capsys)
    assert (status, out) == (2, [])
    assert "not a regular file or directory" in err


def test_a_file_over_the_size_cap_is_an_error_not_read_whole(tmp_path, capsys, monkeypatch):
    from hvbsd.devd import lint as lint_module

    monkeypatch.setattr(lint_module, "MAX_FILE_BYTES", 64)
    path = write(tmp_path, "big.conf", "# " + "x" * 100 + "\n")
    status, out, _ = lint(path, capsys=capsys)
    assert status == 1
    assert out == [f"{path}:1: error: cannot read it: larger than 64 bytes"]


def test_raw_expansion_check_flags_values_pasted_without_a_strict_match(tmp_path, capsys):
    path = write(tmp_path, "vf.conf",
                 'notify 20 {\n\tmatch "system" "ETHERNET";\n'
                 '\taction "/x/hyperv_vfattach $subsystem 0";\n};\n'
                 'notify 21 {\n\tmatch "system" "ETHERNET";\n'
                 '\tmatch "subsystem" "(hn|mce)[0-9]+";\n\taction "/x/vfattach $subsystem";\n};\n'
                 'notify 22 {\n\tmatch "subsystem" "hn[0-9]+|mce0";\n\taction "/x/a $subsystem";\n'
                 '};\nnotify 23 {\n\tmatch "subsystem" "!x";\n\taction "/x/a $subsystem";\n};\n')
    parser = argparse.ArgumentParser(prog="hvbsd")
    devd_cli.register(parser.add_subparsers())
    args = parser.parse_args(["lint", "--raw-expansion", str(path)])
    assert args.func(args) == 1
    out = capsys.readouterr().out.splitlines()
    flagged = [line.split(": ", 1)[0] for line in out if "action pastes $subsystem" in line]
    # unmatched, unanchored (^hn[0-9]+|mce0$) and negated matches do not limit the value
    assert flagged == [f"{path}:3", f"{path}:12", f"{path}:16"]
    assert lint(path, capsys=capsys)[0] == 1  # without the option: only the '|' trap


@pytest.mark.parametrize("example", ["azure-lagg", "static-dual-stack", "transparent"])
def test_hvbsds_rendered_rules_are_clean_even_for_raw_expansion(tmp_path, example):
    import yaml

    from hvbsd.render import render_host

    root = Path(__file__).resolve().parents[3]
    variables = yaml.safe_load((root / "examples" / f"{example}.yml").read_text())
    rendered = render_host(variables)["/usr/local/etc/devd/hvbsd.conf"]
    (tmp_path / "hvbsd.conf").write_bytes(rendered.file_bytes())
    stock = BASE / releases.default().stock / "etc"
    given = [str(path) for path in (stock / "devd.conf", stock / "devd") if path.exists()]
    result = run_lint("--raw-expansion", "--release", releases.default().name, *given,
                      "hvbsd.conf", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("hvbsd.conf:")]
