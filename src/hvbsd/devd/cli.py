"""`hvbsd lint PATH...`: check devd rule files and shell scripts before they reach a guest.

Exit status: 0 clean, 1 problems found (errors or warnings), 2 the command
itself could not run (missing file, a file of unknown type, no shellcheck, a
file nested beyond Python's recursion limit, an unknown ``--release``).
``--release R`` lints for one supported FreeBSD release; without it a
release-dependent hazard is reported for every supported release where it
holds, naming them.  A name that starts with '-' is
given after ``--`` (``hvbsd lint -- -V``) or as ``./-V``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check devd .conf files and /bin/sh scripts",
        description=(
            "Parse devd .conf files as devd(8) does and warn about its known traps; "
            "check #!/bin/sh scripts with sh -n and shellcheck -s sh. "
            "A directory lints the files in it (not recursively). "
            "Exit 0 when clean, 1 on problems, 2 on usage errors."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="devd .conf file, shell script, or directory")
    parser.add_argument(
        "--case-sensitive", action="store_true",
        help="compile match regexes without REG_ICASE, as devd before 14.x did",
    )
    parser.add_argument(
        "--raw-expansion", action="store_true",
        help="also warn where an action pastes an event value that no match of its rule "
             "limits to shell-safe characters (devd without $'...' quoting runs it as code)",
    )
    parser.add_argument(
        "--release", metavar="R",
        help="the FreeBSD release the files are for: release-dependent hazards are reported "
             f"only if they hold there (one of {_release_names()}; default: every supported "
             "release, each warning naming the releases where it holds)",
    )
    parser.set_defaults(func=run)


def _release_names() -> str:
    from hvbsd import releases

    try:
        return ", ".join(releases.names())
    except (OSError, ValueError, KeyError):  # releases.yml unreadable: --release says so
        return "the releases in releases.yml"


def run(args: argparse.Namespace) -> int:
    from hvbsd import releases
    from hvbsd.devd.lint import LintUsageError, lint_paths

    chosen = None
    try:
        if args.release is not None:
            chosen = [releases.get(args.release)]
    except releases.UnknownRelease as exc:
        print(f"hvbsd lint: --release: {exc}", file=sys.stderr)
        return 2
    try:
        problems = lint_paths(args.paths, icase=not args.case_sensitive,
                              raw_expansion=args.raw_expansion, releases=chosen)
    except LintUsageError as exc:
        print(f"hvbsd lint: {exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print("hvbsd lint: a file is nested too deeply to check (Python's recursion limit); "
              "nothing was checked", file=sys.stderr)
        return 2
    except MemoryError:
        print("hvbsd lint: out of memory while checking; nothing was checked", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        files = len({problem.file for problem in problems})
        print(f"hvbsd lint: {len(problems)} problem(s) in {files} file(s)", file=sys.stderr)
        return 1
    return 0
