"""sysrc(8): read and change rc.conf(5) variables as FreeBSD's sysrc does.

Values are read the way rc reads them: ``/bin/sh`` sources
``$RC_DEFAULTS`` (``/etc/defaults/rc.conf``) and then every file of
``rc_conf_files`` (or the ``-f`` files).  ``name=value`` rewrites the last
assignment in the last file that sets the variable, or appends to the first
of ``rc_conf_files``; ``-x`` deletes every assignment.  Output:
``name: value``, ``name: old -> new``; ``-n`` values only, ``-e``
``name="value"``; unknown variables are reported and make the exit status 1.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError

PROGRAM = "sysrc"
DEFAULTS = "/etc/defaults/rc.conf"
USAGE = (
    "Usage: sysrc [OPTIONS] {name[[+|-]=value] ... | -a | -A | -l | -L [name ...]}\n"
    "Try `sysrc --help' for more information.\n"
)
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Prints, for each name given, "1<NUL>value<NUL>" when set and "0<NUL><NUL>" when not.
_READER = r"""
. "$1"
shift
if [ "${HVBSD_SYSRC_FILES+set}" ]; then
	rc_conf_files=$HVBSD_SYSRC_FILES
fi
for _sysrc_file in $rc_conf_files; do
	if [ -r "$_sysrc_file" ]; then
		. "$_sysrc_file"
	fi
done
for _sysrc_name in "$@"; do
	if eval "[ \"\${$_sysrc_name+set}\" ]"; then
		eval "printf '1\0%s\0' \"\$$_sysrc_name\""
	else
		printf '0\0\0'
	fi
done
"""


class Config:
    def __init__(self, defaults: str, files: Optional[list[str]]) -> None:
        self.defaults = defaults
        self.explicit_files = files

    def read(self, names: list[str]) -> dict[str, Optional[str]]:
        env = dict(os.environ)
        env.pop("HVBSD_SYSRC_FILES", None)
        if self.explicit_files is not None:
            env["HVBSD_SYSRC_FILES"] = " ".join(self.explicit_files)
        result = subprocess.run(
            ["/bin/sh", "-c", _READER, "sysrc", self.defaults, *names],
            capture_output=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            sys.stderr.write(result.stderr.decode(errors="replace"))
            raise SystemExit(1)
        fields = result.stdout.split(b"\0")
        values: dict[str, Optional[str]] = {}
        for index, name in enumerate(names):
            is_set, value = fields[2 * index], fields[2 * index + 1]
            values[name] = value.decode(errors="surrogateescape") if is_set == b"1" else None
        return values

    def files(self) -> list[str]:
        """rc_conf_files as the defaults file sets it (or the -f files)."""
        if self.explicit_files is not None:
            return self.explicit_files
        result = subprocess.run(
            ["/bin/sh", "-c", '. "$1" && printf "%s" "$rc_conf_files"', "sysrc", self.defaults],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.split() if result.returncode == 0 else ["/etc/rc.conf"]

    def find(self, name: str) -> Optional[str]:
        """The last file (defaults included) that assigns ``name``."""
        found = None
        for path in [self.defaults, *self.files()]:
            if _assignments(path, name):
                found = path
        return found


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as stream:
            return stream.read().splitlines(keepends=True)
    except FileNotFoundError:
        return []


def _assignment_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(name)}=")


def _assignments(path: str, name: str) -> list[int]:
    pattern = _assignment_pattern(name)
    return [i for i, line in enumerate(_lines(path)) if pattern.match(line)]


def _quote(value: str) -> str:
    escaped = "".join("\\" + c if c in '\\"$`' else c for c in value)
    return f'"{escaped}"'


def _write_atomically(path: str, lines: list[str]) -> None:
    directory = os.path.dirname(path) or "."
    mode = 0o644
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(prefix=".sysrc.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", errors="surrogateescape") as stream:
            stream.writelines(lines)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def set_variable(config: Config, name: str, value: str) -> None:
    target = config.find(name)
    if target is None or target == config.defaults:
        files = config.files()
        target = files[0] if files else "/etc/rc.conf"
    lines = _lines(target)
    positions = _assignments(target, name)
    new_line = f"{name}={_quote(value)}\n"
    if positions:
        lines[positions[-1]] = new_line
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(new_line)
    _write_atomically(target, lines)


def delete_variable(config: Config, name: str) -> bool:
    deleted = False
    for path in config.files():
        positions = set(_assignments(path, name))
        if positions:
            lines = [line for i, line in enumerate(_lines(path)) if i not in positions]
            _write_atomically(path, lines)
            deleted = True
    return deleted


def _names_in_files(paths: list[str]) -> list[str]:
    names: list[str] = []
    pattern = re.compile(r"^[ \t]*([A-Za-z_][A-Za-z0-9_]*)=")
    for path in paths:
        for line in _lines(path):
            match = pattern.match(line)
            if match and match.group(1) not in names:
                names.append(match.group(1))
    return sorted(names)


def main(argv: list[str]) -> int:
    show_name = True
    show_equals = False
    delete = False
    ignore_unknown = False
    quiet = False
    show_all = False
    check_only = False
    explicit_files: Optional[list[str]] = None
    options = GetOpt(argv, "Aacef:inqvx")
    try:
        for letter, value in options:
            if letter == "n":
                show_name = False
            elif letter == "e":
                show_equals = True
            elif letter == "x":
                delete = True
            elif letter == "i":
                ignore_unknown = True
            elif letter == "q":
                quiet = True
            elif letter in ("a", "A"):
                show_all = True
            elif letter == "c":
                check_only = True
            elif letter == "f":
                explicit_files = (explicit_files or []) + value.split()
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    arguments = options.operands
    if not arguments and not show_all:
        sys.stderr.write(USAGE)
        return 1
    if delete and show_all:
        sys.stderr.write(
            f"{PROGRAM}: `-x' option incompatible with `-a'/`-A' options (use `-X' to override)\n"
        )
        return 1
    config = Config(os.environ.get("RC_DEFAULTS") or DEFAULTS, explicit_files)
    # rc.conf files must parse before anything is read or changed.
    for path in config.files():
        if os.path.exists(path):
            check = subprocess.run(["/bin/sh", "-n", path], check=False)
            if check.returncode != 0:
                sys.stderr.write(f"{PROGRAM}: Exiting due to previous syntax errors\n")
                return 1
    separator = '="' if show_equals and show_name else ": "
    closing = '"' if show_equals and show_name else ""
    if show_all:
        names = _names_in_files(config.files())
        values = config.read(names) if names else {}
        for name in names:
            value = values.get(name)
            if value is not None:
                prefix = f"{name}{separator}" if show_name else ""
                sys.stdout.write(f"{prefix}{value}{closing}\n")
        return 0
    status = 0
    for argument in arguments:
        name, has_value, new_value = argument.partition("=")
        if not NAME_PATTERN.match(name):
            sys.stderr.write(f"{PROGRAM}: {name}: name contains characters not allowed in shell\n")
            status = 1
            continue
        if has_value and not delete:
            before = config.read([name])[name] or ""
            if check_only:
                if before != new_value:
                    status = 1
                continue
            set_variable(config, name, new_value)
            after = config.read([name])[name] or ""
            if show_equals and show_name:
                sys.stdout.write(f'{name}="{before}" # -> "{after}"\n')
            else:
                prefix = f"{name}: " if show_name else ""
                sys.stdout.write(f"{prefix}{before} -> {after}\n")
            continue
        value = config.read([name])[name]
        if value is None:
            if not (ignore_unknown or quiet):
                sys.stderr.write(f"{PROGRAM}: unknown variable '{name}'\n")
            status = 1
            continue
        if check_only:
            continue
        if delete:
            delete_variable(config, name)
            continue
        prefix = f"{name}{separator}" if show_name else ""
        sys.stdout.write(f"{prefix}{value}{closing}\n")
    return status
