"""``hvbsd lab up|provision|check|run|status|down``: bring up guests, deploy, check, report.

The lab's state (provider, targets, step durations, a copy of the
variables) lives in ``$HVBSD_LAB_HOME`` or ``./.hvbsd/lab``; each verb reads
what the previous one left there.  Exit status: 0 done (every check passed),
1 a check failed, 2 bad input, 3 the provider failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from hvbsd.locate import data_path, data_root

DEFAULT_VARS = data_path("lab", "vars", "default.yml")
CHECKS = data_path("tests", "infra")
STATE_FILE = "lab.json"
VARIABLES_COPY = "variables.json"
DEFAULT_GUESTS = 2
MAX_GUESTS = 16
CHECK_TIMEOUT = 900.0
VERSION_TIMEOUT = 30.0
DEPLOY_LOGS = ("ansible.log", "vagrant.log")  # what the providers write in the lab's state
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,62}\Z")

EPILOG = """\
run = up + provision + check + report, then down unless --keep.
The report (JUnit XML, summary.md, summary.html, a timeline per scenario)
goes to lab-report/ or --report DIR.  State: $HVBSD_LAB_HOME or ./.hvbsd/lab.

exit status: 0 every check passed, 1 a check failed, 2 bad input,
3 the provider could not bring up or provision the guests
"""


class UsageError(Exception):
    """Bad input: exit status 2."""


# -- the lab's state --------------------------------------------------------------------


def lab_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "lab_dir", None) or os.environ.get("HVBSD_LAB_HOME")
    return Path(given).resolve() if given else Path.cwd() / ".hvbsd" / "lab"


def load_state(directory: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return loaded


def save_state(directory: Path, state: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def targets_of(state: dict[str, Any]) -> list[Any]:
    from hvbsd.lab.providers import Target

    return [Target(name=t["name"], hosts_spec=t["hosts_spec"],
                   variables_file=Path(t["variables_file"]), provider=t["provider"])
            for t in state.get("targets", [])]


def record_steps(state: dict[str, Any], tracker: Any) -> None:
    steps = state.setdefault("steps", {})
    for guest, done in tracker.steps.items():
        steps.setdefault(guest, []).extend([step, round(seconds, 2)] for step, seconds in done)
    tracker.steps.clear()


# -- input ------------------------------------------------------------------------------------


def guest_names(text: Optional[str], provider: Any, release: str = "") -> list[str]:
    text = (text or str(DEFAULT_GUESTS)).strip()
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= MAX_GUESTS:
            raise UsageError(f"--guests {text}: the number of guests must be 1 to {MAX_GUESTS}")
        default_names = getattr(provider, "default_guests", None)
        if callable(default_names):
            return list(default_names(count, release))
        return [f"lab{n}" for n in range(1, count + 1)]
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if not _NAME.match(name)]
    if not names or bad:
        raise UsageError(f"--guests {text!r}: give a number or guest names separated by commas"
                         " (a name starts with a letter; letters, digits and '-')")
    if len(set(names)) != len(names):
        raise UsageError(f"--guests {text!r}: a name is given twice")
    return names


def release_of(args: argparse.Namespace, state: dict[str, Any]) -> str:
    """The FreeBSD release the lab's guests run: --release, else the one the lab
    is up with, else the default of releases.yml."""
    from hvbsd import releases

    given = getattr(args, "release", None)
    recorded = state.get("release") if state.get("targets") else None
    try:
        name = releases.get(given).name if given is not None else (
            recorded or releases.default().name)
    except releases.UnknownRelease as error:
        raise UsageError(f"--release: {error}") from None
    if recorded and recorded != name:
        raise UsageError(f"the lab in {lab_dir(args)} is up with FreeBSD {recorded}; "
                         "run 'hvbsd lab down' first")
    return name


def variables_file(args: argparse.Namespace) -> Path:
    path = Path(args.vars) if args.vars else DEFAULT_VARS
    if not path.is_file():
        raise UsageError(f"--vars {path}: no such file")
    from hvbsd.lab.providers import ProviderError
    from hvbsd.lab.sim import load_variables

    try:
        variables = load_variables(path)
    except ProviderError as error:
        raise UsageError(str(error)) from None
    from hvbsd.render import render_host

    try:
        render_host(variables)
    except Exception as error:
        raise UsageError(f"--vars {path}: {error}") from None
    return path


def provider_for(args: argparse.Namespace, state: dict[str, Any]) -> Any:
    from hvbsd.lab.providers import PROVIDERS, get_provider

    recorded = state.get("provider") if state.get("targets") else None
    name = args.provider or recorded or "sim"
    if name not in PROVIDERS:
        raise UsageError(f"--provider {name!r}: unknown provider (known: "
                         f"{', '.join(sorted(PROVIDERS))})")
    if state.get("provider") and state["provider"] != name and state.get("targets"):
        raise UsageError(f"the lab in {lab_dir(args)} is up with provider "
                         f"{state['provider']!r}; run 'hvbsd lab down' first")
    return get_provider(name, lab_dir(args))


# -- what the report says about the run -------------------------------------------------------


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def about_run(state: dict[str, Any]) -> list[tuple[str, str]]:
    """The (what, value) rows the report opens with."""
    from hvbsd import __version__

    return [("variables file", str(state.get("vars") or "?")),
            ("provider", str(state.get("provider") or "?")),
            ("FreeBSD release", str(state.get("release") or "?")),
            ("hvbsd", __version__),
            ("ansible-core", _package_version("ansible-core")),
            ("python", sys.version.split()[0])]


def freebsd_version(target: Any) -> str:
    """What ``freebsd-version`` answers in a simulated guest ("" for other providers)."""
    if target.provider != "sim":
        return ""
    from urllib.parse import parse_qs, urlsplit

    from hvbsd.sim.guest import Guest

    state_dir = parse_qs(urlsplit(target.hosts_spec).query).get("state_dir")
    if not state_dir:
        return "unknown"
    try:
        answer = Guest(target.name, Path(state_dir[0])).exec(
            ["freebsd-version"], text=True, timeout=VERSION_TIMEOUT)
    except Exception as error:  # the report still gets written
        return f"unknown ({type(error).__name__})"
    first = answer.stdout.strip().splitlines()[:1]
    return first[0][:100] if answer.returncode == 0 and first else "unknown"


def keep_deploy_log(directory: Path, report_dir: Path) -> Optional[str]:
    """Copy the provider's deploy log into the report; its file name there, or None."""
    for name in DEPLOY_LOGS:
        source = directory / name
        if source.is_file() and not source.is_symlink():
            shutil.copyfile(source, report_dir / name)
            return name
    return None


# -- verbs ---------------------------------------------------------------------------------


def do_up(args: argparse.Namespace, tracker: Any) -> list[Any]:
    directory = lab_dir(args)
    state = load_state(directory)
    provider = provider_for(args, state)
    release = release_of(args, state)
    names = guest_names(args.guests, provider, release)
    source = variables_file(args)
    directory.mkdir(parents=True, exist_ok=True)
    from hvbsd.lab.sim import load_variables

    copy = directory / VARIABLES_COPY
    copy.write_text(json.dumps(load_variables(source), indent=1), encoding="utf-8")
    state.update(provider=provider.name, vars=str(source.resolve()), release=release)
    save_state(directory, state)
    try:
        targets = provider.up(names, copy, tracker, release)
    finally:
        record_steps(state, tracker)
        save_state(directory, state)
    known = {t["name"]: t for t in state.get("targets", [])}
    known.update({t.name: {**asdict(t), "variables_file": str(t.variables_file)}
                  for t in targets})
    state["targets"] = list(known.values())
    save_state(directory, state)
    return targets


def do_provision(args: argparse.Namespace, tracker: Any) -> None:
    directory = lab_dir(args)
    state = load_state(directory)
    targets = targets_of(state)
    if not targets:
        raise UsageError(f"no lab is up in {directory}: run 'hvbsd lab up' first")
    provider = provider_for(args, state)
    try:
        provider.provision(targets, tracker)
    finally:
        record_steps(state, tracker)
        save_state(directory, state)


def _run_checks(target: Any, staging: Path, tracker: Any) -> Any:
    from hvbsd.lab.report import GuestReport, add_timelines, read_junit

    report = GuestReport(target.name, target.provider)
    junit = staging / f"junit-{target.name}.xml"
    timeline = staging / ".timeline" / target.name
    tracker(target.name, "check")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    argv = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
            "-o", "addopts=", "--import-mode=importlib", f"--rootdir={data_root()}",
            f"--hosts={target.hosts_spec}", f"--hvbsd-vars={target.variables_file}", "--hvbsd-live",
            f"--hvbsd-timeline={timeline}", f"--junitxml={junit}", str(CHECKS)]
    try:
        ran = subprocess.run(argv, env=env, cwd=data_root(), capture_output=True, text=True,
                             timeout=CHECK_TIMEOUT, check=False)
        output = ran.stdout + ran.stderr
    except subprocess.TimeoutExpired:
        output = f"checks did not finish within {CHECK_TIMEOUT:.0f} s"
        report.error = output
    (staging / f"checks-{target.name}.txt").write_text(output, encoding="utf-8")
    report.check_output = f"checks-{target.name}.txt"
    report.freebsd_version = freebsd_version(target)
    if junit.is_file():
        report.checks = read_junit(junit)
        report.junit = junit.name
    elif not report.error:
        report.error = "the checks did not run: " + " ".join(output.strip().splitlines()[-3:])
    add_timelines(report, timeline, staging)
    failed = len(report.failed)
    tracker(target.name, "passed" if report.ok else
            f"FAILED ({failed} check{'s' if failed != 1 else ''})" if failed else "FAILED")
    tracker.finish(target.name)
    return report


def do_check(args: argparse.Namespace, tracker: Any) -> tuple[bool, Path]:
    from hvbsd.lab.report import publish, write_summaries

    directory = lab_dir(args)
    state = load_state(directory)
    targets = targets_of(state)
    if not targets:
        raise UsageError(f"no lab is up in {directory}: run 'hvbsd lab up' first")
    final = Path(args.report or "lab-report").resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            reports = list(pool.map(lambda t: _run_checks(t, staging, tracker), targets))
        record_steps(state, tracker)
        save_state(directory, state)
        deploy_log = keep_deploy_log(directory, staging)
        for report in reports:
            report.steps = [(step, float(sec)) for step, sec in
                            state.get("steps", {}).get(report.name, [])]
            report.deploy_log = deploy_log
        shutil.rmtree(staging / ".timeline", ignore_errors=True)
        title = (f"hvbsd lab: {len(reports)} guest(s), provider {state.get('provider')}, "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        write_summaries(reports, staging, title, about_run(state))
        publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return all(r.ok for r in reports), final


def deploy_failure_report(args: argparse.Namespace, why: str) -> tuple[Path, Optional[str]]:
    """After a failed provision: a report of the guests and the deploy log, which
    ``down`` would delete.  Returns the report directory and the log's name in it."""
    from hvbsd.lab.report import GuestReport, publish, write_summaries

    directory = lab_dir(args)
    state = load_state(directory)
    final = Path(args.report or "lab-report").resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        deploy_log = keep_deploy_log(directory, staging)
        reports = []
        for target in targets_of(state):
            report = GuestReport(target.name, target.provider, deploy_log=deploy_log,
                                 error=f"the deploy failed: {why.splitlines()[0]}")
            report.steps = [(step, float(sec)) for step, sec in
                            state.get("steps", {}).get(target.name, [])]
            reports.append(report)
        title = (f"hvbsd lab: {len(reports)} guest(s), provider {state.get('provider')}, "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}, deploy failed")
        write_summaries(reports, staging, title, about_run(state))
        publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final, deploy_log


def do_down(args: argparse.Namespace, tracker: Any) -> None:
    directory = lab_dir(args)
    state = load_state(directory)
    provider = provider_for(args, state)
    provider.down(tracker)
    for name in (STATE_FILE, VARIABLES_COPY):
        (directory / name).unlink(missing_ok=True)
    for empty in (directory, directory.parent):
        if empty.name in ("lab", ".hvbsd") and empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()


# -- commands -------------------------------------------------------------------------------


def _tracker(args: argparse.Namespace) -> Any:
    from hvbsd.lab.progress import Tracker

    return Tracker(args.progress)


def _guarded(verb: str, function: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from hvbsd.lab.providers import ProviderError

        tracker = _tracker(args)
        try:
            return int(function(args, tracker))
        except UsageError as error:
            tracker.close()
            sys.stderr.write(f"hvbsd lab {verb}: {error}\n")
            return 2
        except ProviderError as error:
            tracker.close()
            sys.stderr.write(f"hvbsd lab {verb}: {error}\n")
            return 3
        finally:
            tracker.close()

    return run


def _up(args: argparse.Namespace, tracker: Any) -> int:
    targets = do_up(args, tracker)
    tracker.finish()
    tracker.close()
    for target in targets:
        print(f"{target.name}: {target.hosts_spec}")
    return 0


def _provision(args: argparse.Namespace, tracker: Any) -> int:
    do_provision(args, tracker)
    tracker.finish()
    return 0


def _report_line(ok: bool, final: Path) -> str:
    return (f"{'all checks passed' if ok else 'CHECKS FAILED'}; report: "
            f"{final / 'summary.html'} (also summary.md, junit-*.xml, checks-*.txt, "
            "the deploy log, timelines/)")


def _check(args: argparse.Namespace, tracker: Any) -> int:
    ok, final = do_check(args, tracker)
    tracker.close()
    print(_report_line(ok, final))
    return 0 if ok else 1


def _run(args: argparse.Namespace, tracker: Any) -> int:
    from hvbsd.lab.providers import ProviderError

    directory = lab_dir(args)
    provider_for(args, load_state(directory))  # bad input before anything starts
    release_of(args, load_state(directory))
    guest_names(args.guests, None)
    variables_file(args)
    status = 3
    upped = False
    try:
        do_up(args, tracker)
        upped = True
        try:
            do_provision(args, tracker)
        except ProviderError as error:
            raise ProviderError(_kept_log_message(args, directory, str(error))) from None
        ok, final = do_check(args, tracker)
        status = 0 if ok else 1
        tracker.close()
        print(_report_line(ok, final))
    finally:
        if not args.keep:
            try:
                do_down(args, tracker)
            except ProviderError as error:
                if upped:  # otherwise the error of up says it all
                    sys.stderr.write(f"hvbsd lab run: down: {error}\n")
                    status = status or 3
        else:
            tracker.message(f"guests kept (--keep); 'hvbsd lab down' removes them ({directory})")
    return status


def _kept_log_message(args: argparse.Namespace, directory: Path, why: str) -> str:
    """``why`` with the deploy log pointed at its copy in the report, which ``down`` keeps."""
    try:
        final, deploy_log = deploy_failure_report(args, why)
    except OSError as error:
        return f"{why}\n(the report with the deploy log could not be written: {error})"
    if deploy_log is None:
        return f"{why}\n(report: {final / 'summary.html'})"
    kept = final / deploy_log
    if str(directory / deploy_log) in why:
        return why.replace(str(directory / deploy_log), str(kept))
    return f"{why}\n(deploy log kept in {kept})"


def _status(args: argparse.Namespace, tracker: Any) -> int:
    directory = lab_dir(args)
    state = load_state(directory)
    provider = provider_for(args, state)
    guests = provider.status()
    print(f"lab: {directory} (provider {provider.name})")
    if not guests:
        print("no guests")
    for name, status in guests:
        print(f"{name}: {status}")
    return 0


def _down(args: argparse.Namespace, tracker: Any) -> int:
    do_down(args, tracker)
    tracker.finish()
    return 0


def _options(parser: argparse.ArgumentParser, *, guests: bool = False, report: bool = False,
             keep: bool = False) -> None:
    parser.add_argument("--provider", metavar="NAME",
                        help="sim (default: simulated guests, no VM) or vagrant")
    parser.add_argument("--lab-dir", metavar="DIR",
                        help="the lab's state (default: $HVBSD_LAB_HOME or ./.hvbsd/lab)")
    parser.add_argument("--progress", choices=("auto", "live", "plain", "quiet"), default="auto",
                        help="live display on a terminal, plain lines, or nothing "
                        "(default auto: live on a terminal, quiet otherwise)")
    if guests:
        from hvbsd import releases

        parser.add_argument("--release", metavar="R",
                            help=f"the guests' FreeBSD release: {', '.join(releases.names())} "
                            f"(default {releases.default().name}, or the one the lab is up with)")
        parser.add_argument("--guests", metavar="N|NAMES",
                            help=f"how many guests (default {DEFAULT_GUESTS}) or their names, "
                            "comma separated")
        parser.add_argument("--vars", metavar="FILE",
                            help="hvbsd variables to deploy (default lab/vars/default.yml: "
                            "examples/azure-lagg.yml with a 2 s VF delay)")
    if report:
        parser.add_argument("--report", metavar="DIR",
                            help="where the report goes (default ./lab-report)")
    if keep:
        parser.add_argument("--keep", action="store_true",
                            help="leave the guests up after the run")


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser(
        "lab", help="bring up guests, deploy, play backups and VF hot-plug, check, report",
        description="The lab: FreeBSD guests (simulated, or Vagrant boxes) deployed with"
        " deploy.yml and checked with tests/infra.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = lab.add_subparsers(dest="lab_verb", metavar="VERB")
    verbs.required = True
    table = (
        ("up", "start the guests", _up, {"guests": True}),
        ("provision", "deploy.yml on the guests, then reboot them", _provision, {}),
        ("check", "run the checks of tests/infra, write the report", _check, {"report": True}),
        ("run", "up, provision, check, report, down", _run,
         {"guests": True, "report": True, "keep": True}),
        ("status", "the guests and their state", _status, {}),
        ("down", "remove the guests and the lab's state", _down, {}),
    )
    for verb, text, function, options in table:
        parser = verbs.add_parser(verb, help=text, description=f"hvbsd lab {verb}: {text}.",
                                  epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        _options(parser, **options)
        parser.set_defaults(func=_guarded(verb, function))
