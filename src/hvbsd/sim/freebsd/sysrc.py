"""sysrc(8): read and change rc.conf(5) variables as FreeBSD's sysrc does.

A step-by-step rendering of FreeBSD's ``usr.sbin/sysrc/sysrc`` (main body,
version 7.3) and of the functions of ``usr.sbin/sysrc/sysrc.subr`` it calls
(``f_sysrc_get``, ``f_sysrc_find``, ``f_sysrc_set``, ``f_sysrc_delete``,
``f_sysrc_desc``, ``f_sysrc_service_configs``); each function below names the
one it renders.  Values are read as FreeBSD reads them: ``/bin/sh`` sources
``$RC_DEFAULTS`` and calls its ``source_rc_confs`` (with ``rc_conf_files``
replaced by ``$RC_CONFS`` when that is set, as ``-f``, ``-D``, ``-s`` and
``-E`` do) and then expands ``${NAME}``.  Changes are written as sysrc.subr's
awk writes them: the value as given, inside the quotes the old assignment
used, with what followed it (a comment) kept.

Deliberate differences: a name whose expansion word holds ``$``, a backquote
or a backslash (``foo-$(cmd)``) is expanded with that word taken literally,
where FreeBSD's ``eval`` would run it; ``for a in $add`` does no pathname
expansion; ``-j`` has no jails to enter.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError

PROGRAM = "sysrc"
DEFAULTS = "/etc/defaults/rc.conf"
# sysrc's own $0: the script as the kernel hands it to sh (bin/sh names
# errors of redirections and `sh -n` after it).
SCRIPT = "/usr/sbin/sysrc"
VERSION = "7.3 Sep-15,2026"
OPTSTRING = "aAcdDeEf:Fhij:lLnNqR:s:vxX"
SUCCESS, FAILURE = 0, 1
TIMEOUT = 60  # seconds any one sh may take to read the rc.conf files
# sysrc.subr's VALID_VARNAME_CHARS
VALID = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
IFS = " \t\n"
USAGE = (
    "Usage: sysrc [OPTIONS] {name[[+|-]=value] ... | -a | -A | -l | -L [name ...]}\n"
    "Try `sysrc --help' for more information.\n"
)
_OPTIONS_HELP = [
    ("-a", "Dump a list of all non-default configuration variables."),
    ("-A", "Dump a list of all configuration variables (incl. defaults)."),
    ("-c", "Check. Return success if set or no changes, else error."),
    ("-d", "Print a description of the given variable."),
    ("-D", "Show default value(s) only (this is the same as setting"),
    ("", "RC_CONFS to NULL or passing `-f' with a NULL file-argument)."),
    ("-e", "Print query results as `var=value' (useful for producing"),
    ("", "output to be fed back in). Ignored if `-n' is specified."),
    ("-E", "Existing files only with `-[lL]' or when changing a setting."),
    ("-f file", "Operate on the specified file(s) instead of rc_conf_files."),
    ("", "Can be specified multiple times for additional files."),
    ("-F", "Show only the last rc.conf(5) file each directive is in."),
    ("-h", "Print a short usage statement to stderr and exit."),
    ("--help", "Print this message to stderr and exit."),
    ("-i", "Ignore unknown variables."),
    ("-j jail", "The jid or name of the jail to operate within (overrides"),
    ("", "`-R dir'; requires jexec(8))."),
    ("-l", "List configuration files used at startup on stdout and exit."),
    ("-L", "List all configuration files including rc.conf.d entries."),
    ("-n", "Show only variable values, not their names."),
    ("-N", "Show only variable names, not their values."),
    ("-q", "Quiet. Disable verbose and hide certain errors."),
    ("-s name", "Process additional `rc.conf.d' entries for service name."),
    ("", "Ignored if `-f file' is given."),
    ("-R dir", "Operate within the root directory `dir' rather than `/'."),
    ("-v", "Verbose. Print the pathname of the specific rc.conf(5)"),
    ("", "file where the directive was found."),
    ("--version", "Print version information to stdout and exit."),
    ("-x", "Remove variable(s) from specified file(s)."),
]
# The -a/-A listing's EXCEPT list (sysrc, "Process `-a' or `-A'").
_EXCEPT_TEXT = (
    "IFS EXCEPT PATH RC_DEFAULTS OPTIND DESCRIBE SEP DELETE SHOW_ALL SHOW_EQUALS "
    "SHOW_NAME DEFAULT SHOW_VALUE SHOW_FILE VERBOSE RC_CONFS SERVICE pgm SUCCESS "
    "FAILURE CHECK_ONLY EXISTING_ONLY LIST_CONFS LIST_SERVICE_CONFS "
    "f_sysrc_desc_awk f_sysrc_delete_awk"
)
EXCEPT = frozenset(_EXCEPT_TEXT.split())
# Variables sh sets itself that f_clean_env unsets before the listing.
_SHELL_OWN = ("PS1", "PS2", "PS4", "PPID", "PWD", "OLDPWD", "HOME", "LINENO", "ENV")
_SPACE = " \t\n\v\f\r"  # [[:space:]]
_SAFE_WORD = re.compile(r"[^$`\\]*")


class Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _err(text: str) -> None:
    sys.stderr.write(text)


def _out(text: str) -> None:
    sys.stdout.write(text)


def die(message: str = "") -> None:
    """sysrc's die(): the message (if any) on stderr, exit 1."""
    if message:
        _err(message + "\n")
    raise Exit(FAILURE)


def usage() -> None:
    _err(USAGE)
    die()


def help_text() -> None:
    """sysrc's help(): every option on stderr, exit 1."""
    _err("Usage: sysrc [OPTIONS] name[[+|-]=value] ...\n")
    _err("Usage: sysrc [OPTIONS] -a | -A\n")
    _err("Usage: sysrc [OPTIONS] -l | -L [name ...]\n")
    _err("OPTIONS:\n")
    for option, text in _OPTIONS_HELP:
        _err(f"\t{option:<11}{text}\n")
    _err("\n")
    _err("ENVIRONMENT:\n")
    _err(f"\t{'RC_CONFS':<17}Override default rc_conf_files (even if set to NULL).\n")
    _err(f"\t{'RC_DEFAULTS':<17}Location of `/etc/defaults/rc.conf' file.\n")
    die()


def _split(text: str, ifs: str = IFS) -> list[str]:
    """Field splitting of an unquoted expansion (sh(1) "Field Splitting")."""
    white = "".join(c for c in ifs if c in IFS)
    other = "".join(c for c in ifs if c not in IFS)
    if not other:
        return text.split() if white else [text] if text else []
    fields: list[str] = []
    current = ""
    index = 0
    text = text.strip(white) if white else text
    while index < len(text):
        char = text[index]
        if char in other:
            fields.append(current)
            current = ""
            index += 1
            while index < len(text) and text[index] in white:
                index += 1
            continue
        if char in white:
            # whitespace IFS characters around a delimiter belong to it
            end = index
            while end < len(text) and text[end] in white:
                end += 1
            if end < len(text) and text[end] in other:
                index = end
                continue
            fields.append(current)
            current = ""
            index = end
            continue
        current += char
        index += 1
    if current:
        fields.append(current)
    return fields


def _is_regular_readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def _lines(path: str) -> list[str]:
    """The file's lines without their newlines (awk's records)."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as stream:
        text = stream.read()
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n") if text else []


def _assigns(line: str, name: str) -> Optional[re.Match[str]]:
    # regex = "^[[:space:]]*"varname"="
    return re.match(rf"[{_SPACE}]*{re.escape(name)}=", line)


def _awk_unescape(text: str) -> str:
    """What awk -v name=VALUE makes of VALUE's escape sequences (one-true-awk qstring)."""
    escapes = {"\\": "\\", '"': '"', "/": "/", "a": "\a", "b": "\b", "f": "\f"}
    escapes.update({"n": "\n", "r": "\r", "t": "\t", "v": "\v"})
    result = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 >= len(text):
            result.append(char)
            index += 1
            continue
        following = text[index + 1]
        if following in escapes:
            result.append(escapes[following])
            index += 2
        elif following in "01234567":
            end = index + 1
            while end < len(text) and end < index + 4 and text[end] in "01234567":
                end += 1
            result.append(chr(int(text[index + 1 : end], 8)))
            index = end
        else:
            result.append("\\" + following)
            index += 2
    return "".join(result)


def _sh_syntax_ok(path: str) -> bool:
    completed = subprocess.run(
        ["/bin/sh", "-n", path], stdin=subprocess.DEVNULL, check=False, timeout=TIMEOUT
    )
    return completed.returncode == 0


# The reader: sources RC_DEFAULTS and rc_conf_files as f_sysrc_get does, then
# prints each expansion asked for as "status<NUL>value<NUL>".
_READER = r"""
unset PS1 PS2 PS4 PPID PWD OLDPWD PATH 2>/dev/null
. "$RC_DEFAULTS" > /dev/null 2>&1
unset RC_DEFAULTS
_hvbsd_defaults_files=$rc_conf_files
_hvbsd_confs_set=
if [ "${RC_CONFS+set}" ]; then
	rc_conf_files="$RC_CONFS"
	_hvbsd_confs_set=1
fi
source_rc_confs > /dev/null 2>&1
_hvbsd_confs=$RC_CONFS
unset RC_CONFS
for _hvbsd_expr in "$@"; do
	case "$_hvbsd_expr" in
	rc_conf_files)
		if [ "$_hvbsd_confs_set" ] && [ "$rc_conf_files" = "$_hvbsd_confs" ]; then
			printf '0\0%s\0' "$_hvbsd_defaults_files"
			continue
		fi ;;
	esac
	if _hvbsd_value=$(eval "printf '%s\n' \"\${$_hvbsd_expr}\"" 2>/dev/null); then
		printf '0\0%s\0' "$_hvbsd_value"
	else
		printf '1\0\0'
	fi
done
"""

_LISTER = r"""
unset PS1 PS2 PS4 2>/dev/null
_hvbsd_names() {
	set | while IFS= read -r _hvbsd_line; do
		case "$_hvbsd_line" in
		[A-Za-z_]*=*)
			_hvbsd_n=${_hvbsd_line%%=*}
			case "$_hvbsd_n" in *[!A-Za-z0-9_]*) ;; *) echo "$_hvbsd_n" ;; esac ;;
		esac
	done
}
if [ -f "$RC_DEFAULTS" -a -r "$RC_DEFAULTS" ]; then
	. "$RC_DEFAULTS"
	if [ "$1" = 1 ]; then
		for _hvbsd_v in $(_hvbsd_names); do
			case "$_hvbsd_v" in
			rc_conf_files|RC_CONFS|RC_DEFAULTS|IFS|PATH|OPTIND|_hvbsd_*) ;;
			*) unset "$_hvbsd_v" 2>/dev/null ;;
			esac
		done
	fi
	if [ "${RC_CONFS+set}" ]; then
		[ "$1" = 1 -a "$2" = 1 ] || rc_conf_files=
		rc_conf_files="$rc_conf_files $RC_CONFS"
		rc_conf_files="${rc_conf_files# }"
		rc_conf_files="${rc_conf_files% }"
	fi
	source_rc_confs
	[ "$1" = 1 -a "$3" = 1 ] && unset rc_conf_files
fi
_hvbsd_names
"""


@dataclass
class Options:
    check_only: bool = False
    default: bool = False
    delete: int = 0
    describe: bool = False
    existing_only: bool = False
    ignore_unknowns: bool = False
    jail: str = ""
    list_service_confs: bool = False
    list_confs: bool = False
    quiet: bool = False
    rootdir: str = ""
    service: str = ""
    show_all: int = 0
    show_equals: bool = False
    show_file: bool = False
    show_name: bool = True
    show_value: bool = True
    verbose: bool = False


class Rc:
    """The rc.conf files as sysrc.subr sees them: RC_DEFAULTS and RC_CONFS."""

    def __init__(self, rc_defaults: str, rc_confs: Optional[str]) -> None:
        self.defaults = rc_defaults
        self.confs = rc_confs  # None: unset

    def _environment(self) -> dict[str, str]:
        # f_clean_env --except IFS RC_CONFS RC_DEFAULTS (PATH kept for commands)
        environment = {"RC_DEFAULTS": self.defaults, "PATH": os.environ.get("PATH", "")}
        environment["PATH"] = environment["PATH"] or "/sbin:/bin:/usr/sbin:/usr/bin"
        if self.confs is not None:
            environment["RC_CONFS"] = self.confs
        return environment

    def get_many(self, expressions: list[str]) -> list[Optional[str]]:
        """f_sysrc_get for each expression: its value (trailing newlines cut), None on failure."""
        results: list[Optional[str]] = [None] * len(expressions)
        if not _is_regular_readable(self.defaults):
            return results
        asked: list[tuple[int, str]] = []
        for position, expression in enumerate(expressions):
            if not expression or expression[0].isdigit():
                continue
            asked.append((position, expression))
        if not asked:
            return results
        completed = subprocess.run(
            ["/bin/sh", "-c", _READER, PROGRAM, *[e for _, e in asked]],
            capture_output=True,
            env=self._environment(),
            check=False,
            timeout=TIMEOUT,
        )
        fields = completed.stdout.split(b"\0")
        for index, (position, _) in enumerate(asked):
            if 2 * index + 1 >= len(fields):
                break
            if fields[2 * index] == b"0":
                value = fields[2 * index + 1].decode("utf-8", "surrogateescape")
                results[position] = value.rstrip("\n")
        return results

    def get(self, expression: str) -> Optional[str]:
        return self.get_many([expression])[0]

    def value(self, expression: str) -> str:
        """$( f_sysrc_get EXPR ): the value, or nothing when unset."""
        return self.get(expression) or ""

    def rc_conf_files(self) -> list[str]:
        return _split(self.value("rc_conf_files"))

    def first_file(self) -> str:
        """f_sysrc_get 'rc_conf_files%%[$IFS]*'"""
        return self.value("rc_conf_files%%[$IFS]*")

    def files(self) -> list[str]:
        """${RC_CONFS-$( f_sysrc_get rc_conf_files )}, split."""
        return _split(self.confs) if self.confs is not None else self.rc_conf_files()

    def find(self, name: str) -> Optional[str]:
        """f_sysrc_find: the last file (defaults last of all) assigning NAME."""
        varname = ""
        for char in name:
            if char not in VALID:
                break
            varname += char
        if not varname or varname[0].isdigit():
            return None
        conf_files = [*reversed(self.files()), self.defaults]
        for path in conf_files:
            if not _is_regular_readable(path):
                continue
            try:
                if any(_assigns(line, varname) for line in _lines(path)):
                    return path
            except OSError:
                continue
        return None

    def describe(self, name: str) -> str:
        """f_sysrc_desc: the comment of NAME's line in RC_DEFAULTS, continuation lines joined."""
        try:
            lines = _lines(self.defaults)
        except OSError:
            return ""
        buffer = ""
        found = False
        for line in lines:
            if not found:
                if not _assigns(line, name):
                    continue
                found = True
                buffer = re.sub(rf"^[^#]*(#[{_SPACE}]*)?", "", line, count=1)
                continue
            if (
                not re.match(rf"[{_SPACE}]*#", line)
                or re.match(rf"[{_SPACE}]*[A-Za-z_][A-Za-z0-9_]*=", line)
                or re.match(rf"[{_SPACE}]*#[A-Za-z_][A-Za-z0-9_]*=", line)
                or re.fullmatch(rf"[{_SPACE}]*", line)
            ):
                break
            buffer = buffer + " " + re.sub(rf"^(.*#)*[{_SPACE}]*", "", line, count=1)
        return buffer.strip(_SPACE)

    def set(self, name: str, new_value: str) -> bool:
        """f_sysrc_set: change the last assignment, or append to the first file."""
        if not name:
            return False
        found = self.find(name)
        if found is None or found == self.defaults:
            if self.confs is not None:
                target = re.split(r"[ \t\n]", self.confs)[0]  # ${RC_CONFS%%[$IFS]*}
            else:
                target = self.first_file()
            return _append(target, f'{name}="{new_value}"')
        target = found
        if not os.access(target, os.W_OK):
            _err(f"{PROGRAM}: cannot create {target}: Permission denied\n")
            return False
        lines = _lines(target)
        # $( awk 1 file | tail -r ) and the echo back: lines, leading empty ones lost
        while lines and lines[0] == "":
            lines.pop(0)
        changed, unchanged_value = _rewrite_last(lines, name, _awk_unescape(new_value))
        if unchanged_value:
            changed.append(f'{name}="{new_value}"')
        return _replace(target, changed)

    def delete(self, name: str) -> bool:
        """f_sysrc_delete: remove every assignment of NAME from the files."""
        if not name:
            return False
        for path in self.files():
            if not os.path.exists(path):
                continue
            if not os.path.isfile(path):
                # awk(1) reads no records from what is not a regular file here
                continue
            try:
                lines = _lines(path)
            except OSError as error:
                _err(f"awk: can't open file {path}: {os.strerror(error.errno or 0)}\n")
                continue
            kept = [line for line in lines if not _assigns(line, name)]
            if len(kept) == len(lines):
                continue
            if not os.access(path, os.W_OK):
                _err(f"{PROGRAM}: {path}: Permission denied\n")
                return False
            if not _replace(path, kept):
                return False
        return True

    def service_configs(self, service: str) -> Optional[list[str]]:
        """f_sysrc_service_configs: the rc.conf.d entries the rc.d script loads."""
        local_startup = _split(self.value("local_startup"))
        script = None
        for directory in ["/etc/rc.d", *local_startup]:
            candidate = f"{directory}/{service}"
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                script = candidate
                break
        if script is None:
            return None
        names = _config_names(script) if _is_shell_script(script) else [service]
        configs: list[str] = []
        for name in names:
            for directory in ["/etc/rc.d", *local_startup]:
                base = directory[: -len("/rc.d")] if directory.endswith("/rc.d") else directory
                test_path = f"{base}/rc.conf.d/{name}"
                if not os.path.isdir(test_path):
                    configs.append(test_path)
                    continue
                for entry in sorted(os.listdir(test_path)):
                    if os.path.isfile(f"{test_path}/{entry}"):
                        configs.append(f"{test_path}/{entry}")
        return configs


def _rewrite_last(lines: list[str], name: str, new_value: str) -> tuple[list[str], bool]:
    """f_sysrc_set_awk over the reversed file; returns (lines, retval != 0)."""
    for position in range(len(lines) - 1, -1, -1):
        line = lines[position]
        match = _assigns(line, name)
        if match is None:
            continue
        prefix = line[: match.end()]
        value = line[match.end() :]
        t1 = t2 = value[:1]
        if t1 and t1 in "`$\\":
            return lines, True
        if t1 == "'":
            value = re.sub(r"^'[^']*", "", value, count=1)
            if not value:
                t2 = ""
            value = value[1:] if value.startswith("'") else value
        elif t1 == '"':
            value = re.sub(r'^"(.*\\\\+")*[^"]*', "", value, count=1)
            if not value:
                t2 = ""
            value = value[1:] if value.startswith('"') else value
        elif t1 and t1 not in _SPACE + ";":
            t1 = t2 = '"'
            value = re.sub(rf"^[^{_SPACE}]*", "", value, count=1)
        elif t1:
            t1 = t2 = '"'
        changed = list(lines)
        changed[position] = f"{prefix}{t1}{new_value}{t2}{value}"
        return changed, False
    return lines, False


def _append(target: str, line: str) -> bool:
    """The append branch of f_sysrc_set: a newline first if the file lacks its last one."""
    try:
        if os.path.exists(target):
            with open(target, "rb") as stream:
                content = stream.read()
            if content and not content.endswith(b"\n"):
                line = "\n" + line
        with open(target, "a", encoding="utf-8", errors="surrogateescape") as stream:
            stream.write(line + "\n")
    except OSError as error:
        reason = os.strerror(error.errno or 0)
        if error.errno == 2:
            reason = "No such file or directory"
        _err(f"{SCRIPT}: cannot create {target}: {reason}\n")
        return False
    return True


def _replace(path: str, lines: list[str]) -> bool:
    """mktemp, chmod/chown as the file, `/bin/sh -n` the result, mv into place."""
    try:
        status = os.stat(path)
        handle, temporary = tempfile.mkstemp(prefix=f"{PROGRAM}.", dir=os.path.dirname(path) or ".")
    except OSError as error:
        reason = os.strerror(error.errno or 0)
        _err(f"mktemp: mkstemp failed on /tmp/{PROGRAM}.XXXXXXXX: {reason}\n")
        return False
    try:
        with os.fdopen(handle, "w", encoding="utf-8", errors="surrogateescape") as stream:
            stream.write("".join(line + "\n" for line in lines))
        os.chmod(temporary, status.st_mode & 0o7777)
        with contextlib.suppress(OSError):
            os.chown(temporary, status.st_uid, status.st_gid)
        # f_eval_catch -d: sh's own message is caught, only sysrc's is shown
        check = subprocess.run(
            ["/bin/sh", "-n", temporary], capture_output=True, check=False, timeout=TIMEOUT
        )
        if check.returncode != 0:
            _err(f"{PROGRAM}: Not overwriting `{path}' due to previous syntax errors\n")
            os.unlink(temporary)
            return False
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        _err(f"mv: rename {temporary} to {path}: {os.strerror(error.errno or 0)}\n")
        return False
    return True


def _is_shell_script(path: str) -> bool:
    # file -b says "... shell script ..." for a #! line naming a shell
    try:
        with open(path, "rb") as stream:
            first = stream.readline(256)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].split()
    return bool(words) and words[-1 if words[0].endswith(b"/env") else 0].endswith(b"sh")


def _config_names(script: str) -> list[str]:
    """The names the script passes to load_rc_config, found as sysrc.subr does: by
    running it with load_rc_config replaced by print_name and run_rc_command by ':'."""
    try:
        with open(script, encoding="utf-8", errors="surrogateescape") as stream:
            text = stream.read()
    except OSError:
        return []
    text = text.replace("load_rc_config ", "print_name ").replace("run_rc_command ", ": ")
    program = (
        "exec 9<&1 1>&- 2>&-\n"
        "last_name=\n"
        'print_name() { local name="$1"; case "$name" in ""|.|..|*/*|"$last_name") return ;; '
        'esac; echo "$name" >&9; last_name="$name"; }\n'
        'eval "$1"\n'
    )
    completed = subprocess.run(
        ["/bin/sh", "-c", program, "sysrc", text],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=TIMEOUT,
    )
    return completed.stdout.decode("utf-8", "surrogateescape").split()


def _defaults_rc_conf_files(defaults: str) -> list[str]:
    """( . "$RC_DEFAULTS"; for i in $rc_conf_files ... ): the defaults' own list.

    What sourcing the defaults prints still reaches stdout, ahead of a NUL and the list.
    """
    completed = subprocess.run(
        ["/bin/sh", "-c", '. "$1"; printf "\\0%s" "$rc_conf_files"', PROGRAM, defaults],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=TIMEOUT,
    )
    shown, _, value = completed.stdout.rpartition(b"\0")
    if shown:
        sys.stdout.flush()
        sys.stdout.buffer.write(shown)
    return _split(value.decode("utf-8", "surrogateescape"))


def _valid_expression(name: str) -> str:
    """The expansion word of a user's name made literal where it would run code."""
    match = re.match(r"([A-Za-z0-9_]*)(:?[-=+?]|%%?|##?)?(.*)", name, re.S)
    if match is None or not match.group(2) or _SAFE_WORD.fullmatch(match.group(3)):
        return name
    word = match.group(3).replace("'", "'\\''")
    return f"{match.group(1)}{match.group(2)}'{word}'"


def _service_list() -> list[str]:
    """`service -l`: every script of /etc/rc.d and local_startup."""
    completed = subprocess.run(
        ["/usr/sbin/service", "-l"], capture_output=True, text=True, check=False
    )
    return completed.stdout.split() if completed.returncode == 0 else []


def _parse(argv: list[str]) -> tuple[Options, list[str], Optional[str]]:
    options = Options()
    rc_confs = os.environ.get("RC_CONFS")
    parsed = GetOpt(argv, OPTSTRING)
    try:
        for letter, argument in parsed:
            rc_confs = _apply(options, letter, argument, rc_confs)
    except UsageError as error:
        # bin/sh getopts' words, then usage
        if error.missing_argument:
            _err(f"No arg for -{error.letter} option\n")
        else:
            _err(f"Illegal option -{error.letter}\n")
        usage()
    return options, parsed.operands, rc_confs


def _apply(options: Options, letter: str, argument: str, rc_confs: Optional[str]) -> Optional[str]:
    if letter == "a":
        options.show_all = options.show_all or 1
    elif letter == "A":
        options.show_all = 2
    elif letter == "c":
        options.check_only = True
    elif letter == "d":
        options.describe = True
    elif letter == "D":
        options.default = True
        rc_confs = ""
    elif letter == "e":
        options.show_equals = True
    elif letter == "E":
        options.existing_only = True
    elif letter == "f":
        options.default = False
        rc_confs = f"{rc_confs} {argument}" if rc_confs else argument
    elif letter == "F":
        options.show_file = True
    elif letter == "h":
        usage()
    elif letter == "i":
        options.ignore_unknowns = True
    elif letter in "jRs":
        if not argument:
            die(f"{PROGRAM}: Missing or null argument to `-{letter}' flag")
        if letter == "j":
            options.jail = argument
        elif letter == "R":
            options.rootdir = argument
        else:
            options.service = argument
    elif letter == "l":
        options.list_confs = True
    elif letter == "L":
        options.list_service_confs = True
    elif letter == "n":
        options.show_name = False
    elif letter == "N":
        options.show_value = False
    elif letter == "q":
        options.quiet, options.verbose = True, False
    elif letter == "v":
        options.verbose, options.quiet = True, False
    elif letter == "x":
        options.delete = options.delete or 1
    elif letter == "X":
        options.delete = 2
    return rc_confs


def _list_service_confs(rc: Rc, options: Options, names: list[str]) -> int:
    """sysrc's "Process `-L' flag"."""

    def listed(items: list[str], path: str) -> bool:
        return path in items

    def usable(path: str) -> bool:
        return not options.existing_only or (os.path.exists(path) and not os.path.isdir(path))

    listing: list[str] = []
    if not names:
        for path in rc.rc_conf_files():
            if usable(path) and not listed(listing, path):
                listing.append(path)
        if options.verbose:
            _out("rc_conf_files: " + " ".join(listing) + "\n")
        elif options.show_equals:
            _out('rc_conf_files="' + " ".join(listing) + '"\n')
    retval = SUCCESS
    for service in names or _service_list():
        configs = rc.service_configs(service)
        if configs is None:
            retval = FAILURE
            continue
        service_list: list[str] = []
        for path in configs:
            if not usable(path):
                continue
            if not options.verbose and not options.show_equals and listed(listing, path):
                continue
            service_list.append(path)
        if names and not service_list:
            retval = FAILURE
        if options.verbose:
            if service_list:
                _out(f"{service}: {' '.join(service_list)}\n")
            continue
        if options.show_equals:
            if service_list:
                _out(f'{service}="{" ".join(service_list)}"\n')
            continue
        listing.extend(service_list)
    quiet = names and options.quiet
    if not options.verbose and not options.show_equals and not quiet and listing:
        _out(" ".join(" ".join(listing).split()) + "\n")
    return retval


def _show_all(rc: Rc, options: Options, separator: str) -> int:
    """sysrc's "Process `-a' or `-A' command-line options"."""
    in_defaults_only = "0"
    if options.show_all == 1 and rc.find("rc_conf_files") == rc.defaults:
        in_defaults_only = "1"
    keep_files = "1" if options.service and not options.default else "0"
    completed = subprocess.run(
        ["/bin/sh", "-c", _LISTER, PROGRAM, str(options.show_all), keep_files, in_defaults_only],
        capture_output=True,
        env=rc._environment(),
        check=False,
        timeout=TIMEOUT,
    )
    names = []
    for raw in completed.stdout.decode("utf-8", "surrogateescape").split("\n"):
        own = raw in EXCEPT or raw in _SHELL_OWN or raw.startswith("_hvbsd_")
        if raw and not own and raw not in names:
            names.append(raw)
    names.sort()
    values = rc.get_many(names) if options.show_value and not options.describe else []
    for index, name in enumerate(names):
        if options.describe:
            _out(f"{name}: {rc.describe(name)}\n")
            continue
        if options.show_file:
            if options.show_name:
                _out(f"{name}: ")
            found = rc.find(name)
            if found:
                _out(found + "\n")
            continue
        if options.delete == 2:
            rc.delete(name)
            continue
        if options.verbose:
            _out(f"{rc.find(name) or ''}: ")
        if not options.show_value:
            _out(name + "\n")
            continue
        prefix = f"{name}{separator}" if options.show_name else ""
        _out(f"{prefix}{values[index] or ''}{chr(34) if options.show_equals else ''}\n")
    return SUCCESS


def _new_list(before: str, given: str, append: bool) -> str:
    """The APPEND and REMOVE modes: words of the list, with the value's delimiter."""
    delimiter = given[:1]
    ifs = IFS
    if delimiter == "" or delimiter in IFS or re.fullmatch(r"[a-zA-Z0-9./]", delimiter):
        delimiter = " "
    else:
        ifs = delimiter
    new = ""
    if append:
        new = before
        old = _split(before, ifs)
        for word in _split(given, ifs):
            if word and word not in old:
                new = f"{new}{delimiter}{word}"
    else:
        removed = _split(given, ifs)
        for word in _split(before, ifs):
            if word and word not in removed:
                new = f"{new}{delimiter}{word}"
    return new[len(delimiter) :] if new.startswith(delimiter) else new


def _process(rc: Rc, options: Options, arguments: list[str], separator: str) -> int:
    """sysrc's "Process command-line arguments"."""
    status = SUCCESS
    equals = options.show_equals
    for argument in arguments:
        name = argument.split("=", 1)[0]
        mode = "ASSIGN"
        if name.endswith("+"):
            mode, name = "APPEND", name[:-1]
        elif name.endswith("-"):
            mode, name = "REMOVE", name[:-1]
        expression = _valid_expression(name)
        if options.describe:
            _out(f"{name}: {rc.describe(name)}\n")
        if "=" in argument:
            given = argument.split("=", 1)[1]
            if options.verbose and not options.check_only:
                target = rc.find(name)
                if target == rc.defaults or not target:
                    target = rc.first_file()
                _out(f": {target}; " if equals else f"{target}: ")
            if options.delete:
                if not rc.delete(name):
                    status = FAILURE
                continue
            if mode == "ASSIGN":
                before = (rc.find(name) or "") if options.show_file else rc.value(expression)
                new = given
            else:
                before = rc.value(expression)
                new = _new_list(before, given, mode == "APPEND")
                if options.show_file:
                    before = rc.find(name) or ""
            if options.check_only:
                if rc.get(expression + "?") is None:
                    status = FAILURE
                    if options.verbose:
                        _out(f"{name}: not currently set\n")
                elif new != before:
                    status = FAILURE
                    if options.verbose:
                        found = rc.find(name) or ""
                        _out(f"{found}: {name}: would change from `{before}' to `{new}'\n")
                elif options.verbose:
                    _out(f"{rc.find(name) or ''}: {name}: already set to `{before}'\n")
                continue
            if not options.show_value:
                _out(name + "\n")
                if not rc.set(name, new):
                    status = FAILURE
                continue
            if not rc.set(name, new):
                status = FAILURE
                continue
            after = (rc.find(name) or "") if options.show_file else rc.value(expression)
            shown = f"{name}{separator}" if options.show_name else ""
            if equals:
                _out(f'{shown}{before}" # -> "{after}"\n')
            else:
                _out(f"{shown}{before} -> {after}\n")
            continue
        if rc.get(expression + "?") is None:
            if not (options.ignore_unknowns or options.quiet):
                _err(f"{PROGRAM}: unknown variable '{name}'\n")
            status = FAILURE
            continue
        if options.check_only or options.describe:
            continue
        if options.delete:
            if not rc.delete(name):
                status = FAILURE
            continue
        if options.show_file:
            if options.show_name:
                _out(f"{name}: ")
            found = rc.find(name)
            if found:
                _out(found + "\n")
            continue
        if options.verbose:
            found = rc.find(name) or ""
            _out(f": {found}; " if equals else f"{found}: ")
        if not options.show_value:
            _out(name + "\n")
        else:
            shown = f"{name}{separator}" if options.show_name else ""
            _out(f"{shown}{rc.value(expression)}{chr(34) if equals else ''}\n")
    return status


def _in_root(rootdir: str, argv: list[str]) -> int:
    """-R dir: sysrc again, inside chroot(8) of dir (FreeBSD re-runs itself there)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chroot(rootdir)
            os.chdir("/")
        except OSError as error:
            sys.stderr.write(f"chroot: {rootdir}: {os.strerror(error.errno or 0)}\n")
            os._exit(1)
        environment = {"RC_DEFAULTS": os.environ.get("RC_DEFAULTS") or DEFAULTS}
        os.environ.clear()
        os.environ.update(environment)
        os.environ["PATH"] = "/sbin:/bin:/usr/sbin:/usr/bin"
        sys.stdout.flush()
        os._exit(run(argv))
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def run(argv: list[str]) -> int:
    try:
        return _main(argv)
    except Exit as leaving:
        return leaving.status
    except subprocess.TimeoutExpired as expired:
        # FreeBSD's sysrc would wait for ever on an rc.conf that never ends
        what = " ".join(str(word) for word in expired.cmd[:2])
        _err(f"{PROGRAM}: {what}: gave up after {TIMEOUT} seconds\n")
        return FAILURE


def _main(argv: list[str]) -> int:
    if not argv:
        usage()
    for argument in argv:
        if argument == "--":
            break
        if argument == "--help":
            help_text()
        if argument == "--version":
            _out(VERSION + "\n")
            return FAILURE
    options, arguments, rc_confs = _parse(argv)
    rc = Rc(os.environ.get("RC_DEFAULTS") or DEFAULTS, rc_confs)
    if options.list_service_confs:
        return _list_service_confs(rc, options, arguments)
    for argument in arguments:
        # NB: shell expansion syntax removed first
        name = re.sub(r":[+=-].*", "", argument, count=1, flags=re.S)
        name = re.sub(r"[%#+=-].*", "", name, count=1, flags=re.S)
        if any(char not in VALID for char in name):
            die(f"{PROGRAM}: {name}: name contains characters not allowed in shell")
    if options.service and rc.confs is None:
        configs = rc.service_configs(options.service)
        if configs is not None:
            files = Rc(rc.defaults, " ".join(configs)).value("rc_conf_files")
            joined = " ".join(configs)
            rc.confs = f"{files} {joined}" if joined else files
    if options.existing_only:
        listed = _split(rc.confs) if rc.confs is not None else rc.rc_conf_files()
        rc.confs = " ".join(path for path in listed if os.path.isfile(path))
    if options.list_confs:
        if arguments:
            usage()
        if options.default:
            _out(rc.defaults + "\n")
        elif rc.confs is not None:
            _out(rc.confs + "\n")
        else:
            _out(rc.value("rc_conf_files") + "\n")
        return SUCCESS
    if not arguments and not options.show_all:
        usage()
    failed = "sysrc: Exiting due to previous syntax errors"
    if rc.confs is not None:
        paths = _split(rc.confs)
    else:
        if not _sh_syntax_ok(rc.defaults):
            die(failed)
        paths = _defaults_rc_conf_files(rc.defaults)
    for path in paths:
        if os.path.exists(path) and not _sh_syntax_ok(path):
            die(failed)
    if options.delete and options.show_all and options.delete != 2:
        die(f"{PROGRAM}: `-x' option incompatible with `-a'/`-A' options (use `-X' to override)")
    if options.check_only and options.show_all:
        die(f"{PROGRAM}: `-c' option incompatible with `-a'/`-A' options")
    if options.show_file or not options.show_name:
        options.show_equals = False
    if not options.show_value:
        options.show_name, options.show_equals = True, False
    separator = '="' if options.show_equals else ": "
    if options.jail:
        # jexec(8): the simulated guest runs no jails
        _err(f'jexec: jail "{options.jail}" not found\n')
        return FAILURE
    if options.rootdir:
        again = _carry_over(options, rc.confs, arguments)
        sys.stdout.flush()
        return _in_root(options.rootdir, again)
    if options.show_all:
        return _show_all(rc, options, separator)
    return _process(rc, options, arguments, separator)


def _carry_over(options: Options, rc_confs: Optional[str], arguments: list[str]) -> list[str]:
    """The options sysrc passes to itself inside -R dir (its `args')."""
    again = []
    flags = [
        ("v", options.verbose),
        ("q", options.quiet),
        ("x", options.delete == 1),
        ("X", options.delete == 2),
        ("a", options.show_all == 1),
        ("A", options.show_all == 2),
        ("c", options.check_only),
        ("D", options.default),
        ("E", options.existing_only),
        ("d", options.describe),
        ("e", options.show_equals),
        ("i", options.ignore_unknowns),
        ("n", not options.show_name),
        ("N", not options.show_value),
        ("F", options.show_file),
    ]
    again = [f"-{letter}" for letter, wanted in flags if wanted]
    if options.service:
        again += ["-s", options.service]
    if rc_confs is not None:
        again += ["-f", rc_confs]
    return again + (["--"] if arguments and arguments[0].startswith("-") else []) + arguments


def main(argv: list[str]) -> int:
    status = run(argv)
    sys.stdout.flush()
    return status
