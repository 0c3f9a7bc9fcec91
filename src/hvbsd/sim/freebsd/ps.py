"""ps(1): process status with FreeBSD's options and keywords, over the guest's /proc.

rc.subr's _find_processes reads ``/bin/ps -ww -o pid= -o jid= -o command=
-ax`` (check_process) and ``... -p PID`` (check_pidfile) and compares the
jid column with its JID (0: the host), so this ps answers with FreeBSD's
columns: ``jid`` is 0 for every process (the simulated guest runs no jails),
``command`` is the process's argument vector as FreeBSD shows it: the title
a simulated daemon gave itself (setproctitle), or the FreeBSD path of a
simulated command, never the Python interpreter running it.  Selection as
bin/ps/ps.c: by default the user's processes with a terminal, ``-x`` adds
those without, ``-a`` other users', ``-A`` all, ``-p`` a list of pids;
sorted as pscomp() sorts (terminal, then pid); lines cut at the terminal's
width (79 columns off a terminal) unless ``-w`` (131) or ``-ww`` (unlimited).
Exit status 1 when nothing was listed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

from hvbsd.sim.freebsd import COMMANDS, SH_NAME, SH_PATH
from hvbsd.sim.freebsd._common import GetOpt, UsageError

PROGRAM = "ps"
USAGE = (
    "usage: ps [--libxo] [-aCcdefHhjlmrSTuvwXxZ] [-O fmt | -o fmt]\n"
    "          [-G gid[,gid...]] [-J jid[,jid...]] [-M core] [-N system]\n"
    "          [-p pid[,pid...]] [-t tty[,tty...]] [-U user[,user...]]\n"
    "       ps [--libxo] -L\n"
)
PACKAGE = "hvbsd.sim.freebsd"
DEFAULT_FORMAT = ["pid", "tt", "state", "time", "command"]
FORMATS = {
    "j": ["user", "pid", "ppid", "pgid", "sid", "jobc", "state", "tt", "time", "command"],
    "l": ["uid", "pid", "ppid", "cpu", "pri", "nice", "vsz", "rss", "mwchan", "state", "tt",
          "time", "command"],
    "u": ["user", "pid", "%cpu", "%mem", "vsz", "rss", "tt", "state", "start", "time", "command"],
    "v": ["pid", "state", "time", "sl", "re", "pagein", "vsz", "rss", "lim", "tsiz", "%cpu",
          "%mem", "command"],
}
ALIASES = {"args": "command", "stat": "state", "tty": "tt", "ucomm": "ucomm", "login": "user",
           "ruser": "ruser", "uname": "user", "tsid": "sid", "sess": "sid"}


@dataclass
class Process:
    pid: int
    ppid: int
    pgid: int
    sid: int
    tty: int  # Linux tty_nr, 0 for none
    tpgid: int
    state: str
    uid: int
    comm: str
    argv: list[str]
    ticks: int
    nice: int
    vsz: int
    rss: int
    extra: dict[str, str] = field(default_factory=dict)


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as stream:
            return stream.read(1024 * 1024)
    except OSError:
        return None


def _command_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for path, module in COMMANDS.items():
        paths.setdefault(os.path.basename(path), path)
        paths.setdefault(module, path)
    return paths


def shown_argv(argv: list[str], comm: str) -> list[str]:
    """The argument vector FreeBSD would show for this simulated process."""
    if len(argv) >= 3 and argv[1] == "-m" and argv[2].startswith(PACKAGE):
        paths = _command_paths()
        if argv[2] == PACKAGE and len(argv) >= 4:
            return [paths.get(argv[3], argv[3]), *argv[4:]]
        if os.path.basename(argv[0]).startswith("python"):
            return [paths.get(argv[2], argv[2]), *argv[3:]]
        return [argv[0]]  # a title set with setproctitle
    if not argv:
        return [f"[{comm}]"]
    if argv[0] == SH_NAME:
        # the guest's sh (bash under another name): FreeBSD shows a script run
        # through its #! line as "/bin/sh SCRIPT ARGS", and rc.subr's
        # _find_processes looks for that form for a command_interpreter
        return [SH_PATH, *argv[1:]]
    return argv


def processes() -> list[Process]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        cmdline = _read(f"/proc/{entry}/cmdline")
        status = _read(f"/proc/{entry}/status")
        if stat is None or cmdline is None or status is None:
            continue
        text = stat.decode(errors="replace")
        comm = text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        uid = 0
        for line in status.decode(errors="replace").splitlines():
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
        argv = ([a.decode(errors="surrogateescape") for a in cmdline.split(b"\0")[:-1]]
                if cmdline else [])
        shown = shown_argv(argv, comm)
        if shown and argv and shown[0] != argv[0] and shown[0].startswith("/"):
            comm = os.path.basename(shown[0])[:19]  # p_comm: the program exec'd, MAXCOMLEN
        found.append(
            Process(
                pid=int(entry),
                ppid=int(fields[1]),
                pgid=int(fields[2]),
                sid=int(fields[3]),
                tty=int(fields[4]),
                tpgid=int(fields[5]),
                state=fields[0],
                uid=uid,
                comm=comm,
                argv=shown,
                ticks=int(fields[11]) + int(fields[12]),
                nice=int(fields[16]),
                vsz=int(fields[20]) // 1024,
                rss=int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024),
            )
        )
    return found


def _tty_name(process: Process) -> str:
    if process.tty == 0:
        return "-"
    major = (process.tty >> 8) & 0xFFF
    minor = (process.tty & 0xFF) | ((process.tty >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return str((major - 136) * 256 + minor)  # pts/N is shown as N
    if major == 4 and minor < 64:
        return f"v{minor}"
    return "?"


def _state(process: Process) -> str:
    letter = {"R": "R", "S": "S", "D": "D", "T": "T", "t": "T", "Z": "Z", "I": "I"}.get(
        process.state, "S"
    )
    if process.sid == process.pid:
        letter += "s"
    if process.tty and process.tpgid == process.pgid:
        letter += "+"
    return letter


def _time(process: Process) -> str:
    hundredths = process.ticks * 100 // os.sysconf("SC_CLK_TCK")
    seconds, fraction = divmod(hundredths, 100)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}:{seconds:02d}.{fraction:02d}"


def visible(text: str) -> str:
    """What ps prints of an argument string: bin/ps/print.c command() passes it
    through strvis(VIS_TAB | VIS_NL | VIS_NOSLASH), so one process stays one line.
    contrib/libc-vis/vis.c do_svis/do_mbyte, byte by byte as in the C locale: tab
    and newline (the "extra" characters) and 0xA0 as octal; other control and
    high bytes as ^X, M^X or M-c with no backslash; the rest, and '\\', as is."""
    out = []
    for byte in text.encode(errors="surrogateescape"):
        if byte in (0x09, 0x0A, 0xA0):
            out.append(f"\\{byte:03o}")
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            low = byte & 0x7F
            meta = "M" if byte & 0x80 else ""
            if low < 0x20 or low == 0x7F:
                out.append(f"{meta}^{'?' if low == 0x7F else chr(low + 0x40)}")
            else:
                out.append(f"{meta}-{chr(low)}")
    return "".join(out)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


KEYWORDS: dict[str, tuple[str, bool, Callable[[Process], str]]] = {
    # keyword: (header, right-aligned, value)
    "pid": ("PID", True, lambda p: str(p.pid)),
    "ppid": ("PPID", True, lambda p: str(p.ppid)),
    "pgid": ("PGID", True, lambda p: str(p.pgid)),
    "sid": ("SID", True, lambda p: str(p.sid)),
    "jid": ("JID", True, lambda p: "0"),
    "jobc": ("JOBC", True, lambda p: "0"),
    "uid": ("UID", True, lambda p: str(p.uid)),
    "ruid": ("RUID", True, lambda p: str(p.uid)),
    "user": ("USER", False, lambda p: _user(p.uid)),
    "ruser": ("RUSER", False, lambda p: _user(p.uid)),
    "comm": ("COMMAND", False, lambda p: p.comm),
    "ucomm": ("UCOMM", False, lambda p: p.comm),
    "command": ("COMMAND", False, lambda p: visible(" ".join(p.argv))),
    "state": ("STAT", False, _state),
    "tt": ("TT", False, _tty_name),
    "time": ("TIME", True, _time),
    "nice": ("NI", True, lambda p: str(p.nice)),
    "vsz": ("VSZ", True, lambda p: str(p.vsz)),
    "rss": ("RSS", True, lambda p: str(p.rss)),
    "%cpu": ("%CPU", True, lambda p: "0.0"),
    "%mem": ("%MEM", True, lambda p: "0.0"),
    "cpu": ("C", True, lambda p: "0"),
    "pri": ("PRI", True, lambda p: "20"),
    "mwchan": ("MWCHAN", False, lambda p: "-"),
    "start": ("STARTED", False, lambda p: "-"),
    "sl": ("SL", True, lambda p: "0"),
    "re": ("RE", True, lambda p: "0"),
    "pagein": ("PAGEIN", True, lambda p: "0"),
    "lim": ("LIM", True, lambda p: "-"),
    "tsiz": ("TSIZ", True, lambda p: "0"),
    "jail": ("JAIL", False, lambda p: "-"),
}


def _terminal_width(wide: int) -> Optional[int]:
    """ps.c's termwidth: COLUMNS, else the terminal's, else 79; -w 131, -ww unlimited."""
    if wide >= 2:
        return None
    width = 79
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    else:
        with contextlib.suppress(OSError):
            width = os.get_terminal_size(sys.stdout.fileno()).columns - 1
    return max(width, 131) if wide == 1 else width


def _columns(text: str) -> list[tuple[str, str]]:
    """-o's list: keywords split at commas or blanks, each with an optional =header."""
    columns = []
    rest = text
    while rest:
        rest = rest.lstrip(", \t")
        if not rest:
            break
        end = len(rest)
        for index, char in enumerate(rest):
            if char in ", \t":
                end = index
                break
            if char == "=":
                end = len(rest)  # the header takes the rest of the word
                break
        word, rest = rest[:end], rest[end:]
        name, has_header, header = word.partition("=")
        columns.append((name, header if has_header else "\0"))
    return columns


def main(argv: list[str]) -> int:
    selected_pids: list[int] = []
    everyone = no_tty = False
    columns: list[tuple[str, str]] = []
    extra_after_pid: list[tuple[str, str]] = []
    names_only = False
    wide = 0
    options = GetOpt(argv, "AaCcdefG:gHhJ:jLlM:mN:O:o:p:rSTt:U:uvwXxZ")
    try:
        for letter, value in options:
            if letter == "A":
                everyone = no_tty = True
            elif letter == "a":
                everyone = True
            elif letter == "x":
                no_tty = True
            elif letter == "X":
                no_tty = False
            elif letter == "c":
                names_only = True
            elif letter == "o":
                columns += _columns(value)
            elif letter == "O":
                extra_after_pid += _columns(value)
            elif letter in FORMATS:
                columns += [(name, "\0") for name in FORMATS[letter]]
            elif letter == "p":
                for word in value.replace(",", " ").split():
                    if not word.isdigit():
                        sys.stderr.write(f"{PROGRAM}: process id is invalid: {word}\n")
                        return 1
                    selected_pids.append(int(word))
            elif letter == "w":
                wide += 1
            elif letter == "L":
                sys.stdout.write(" ".join(sorted(KEYWORDS)) + "\n")
                return 0
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    if options.operands:
        if all(word.isdigit() for word in options.operands):
            selected_pids += [int(word) for word in options.operands]
        else:
            sys.stderr.write(USAGE)
            return 1
    if not columns:
        columns = [(name, "\0") for name in DEFAULT_FORMAT]
    if extra_after_pid:
        position = next((i + 1 for i, (n, _) in enumerate(columns) if n == "pid"), 1)
        columns[position:position] = extra_after_pid
    resolved = []
    for name, header in columns:
        keyword = ALIASES.get(name, name)
        if keyword not in KEYWORDS:
            sys.stderr.write(f"{PROGRAM}: {name}: keyword not found\n")
            sys.stderr.write(f"{PROGRAM}: no valid keywords; valid keywords:\n")
            return 1
        if names_only and keyword == "command":
            keyword = "comm"
        resolved.append((keyword, KEYWORDS[keyword][0] if header == "\0" else header))
    me = os.getuid()
    chosen = []
    for process in processes():
        if selected_pids:
            if process.pid not in selected_pids:
                continue
        elif not ((everyone or process.uid == me) and (no_tty or process.tty)):
            continue
        chosen.append(process)
    chosen.sort(key=lambda p: (p.tty if p.tty else -1, p.pid))
    rows = [[KEYWORDS[k][2](p) for k, _ in resolved] for p in chosen]
    headers = [header for _, header in resolved]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    lines = []
    if any(headers):
        lines.append(headers)
    lines.extend(rows)
    for line in lines:
        cells = []
        for index, (cell, (keyword, _)) in enumerate(zip(line, resolved)):
            last = index == len(line) - 1
            if KEYWORDS[keyword][1]:
                cells.append(cell.rjust(widths[index]))
            else:
                cells.append(cell if last else cell.ljust(widths[index]))
        text = " ".join(cells).rstrip()
        width = _terminal_width(wide)
        if width is not None and len(text) > width:
            text = text[:width]
        sys.stdout.write(text + "\n")
    return 0 if chosen else 1
