"""`hvbsd lint PATH...`: check devd rule files and shell scripts before they reach a guest.

Exit status: 0 clean, 1 problems found (errors or warnings), 2 the command
itself could not run (missing file, a file of unknown type, no shellcheck, a
file nested beyond Python's recursion limit).  A name that starts with '-' is
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hvbsd.devd.lint import LintUsageError, lint_paths

    try:
        problems = lint_paths(args.paths, icase=not args.case_sensitive,
                              raw_expansion=args.raw_expansion)
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
