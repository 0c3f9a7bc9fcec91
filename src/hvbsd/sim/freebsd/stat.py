"""stat(1) of FreeBSD: ``-f format`` (the fields testinfra's BSDFile uses and
the other common ones), ``-L`` (follow links), ``-n``, ``-q``, ``-x``-less
default output.  Errors: ``stat: PATH: lstat: No such file or directory``.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat as stat_module
import sys
import time
from typing import Optional

from hvbsd.sim.freebsd._common import GetOpt, UsageError

PROGRAM = "stat"
USAGE = "usage: stat [-FLnq] [-f format | -l | -r | -s | -x] [-t timefmt] [file|handle ...]\n"
DEFAULT_FORMAT = '%d %i %Sp %l %Su %Sg %r %z "%Sa" "%Sm" "%Sc" "%SB" %k %b %#Xf %N'
TIME_FORMAT = "%b %e %H:%M:%S %Y"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _type_char(mode: int) -> str:
    if stat_module.S_ISDIR(mode):
        return "/"
    if stat_module.S_ISLNK(mode):
        return "@"
    if stat_module.S_ISFIFO(mode):
        return "|"
    if stat_module.S_ISSOCK(mode):
        return "="
    if mode & 0o111:
        return "*"
    return ""


def _number(value: int, conversion: str, alternate: bool) -> str:
    if conversion == "O":
        return ("0" if alternate and value else "") + f"{value:o}"
    if conversion == "X":
        return ("0x" if alternate else "") + f"{value:x}"
    if conversion == "U":
        return str(value & 0xFFFFFFFFFFFFFFFF)
    return str(value)


def _field(
    info: os.stat_result,
    path: str,
    field: str,
    conversion: Optional[str],
    sub: Optional[str],
    alternate: bool,
) -> str:
    mode = info.st_mode
    if field == "p":
        if conversion == "S":
            return stat_module.filemode(mode)
        value = mode
        if sub == "L":
            value = mode & 0o777
        elif sub == "M":
            value = (mode >> 9) & 0o7
        elif sub == "H":
            value = (mode >> 12) & 0o17
        return _number(value, conversion or "O", alternate)
    if field in ("u", "g"):
        number = info.st_uid if field == "u" else info.st_gid
        if conversion == "S":
            return _user(number) if field == "u" else _group(number)
        return _number(number, conversion or "D", alternate)
    if field in ("a", "m", "c", "B"):
        seconds = {
            "a": info.st_atime,
            "m": info.st_mtime,
            "c": info.st_ctime,
            "B": getattr(info, "st_birthtime", info.st_ctime),
        }[field]
        if conversion == "S":
            return time.strftime(TIME_FORMAT, time.localtime(seconds))
        return _number(int(seconds), conversion or "D", alternate)
    numbers = {
        "d": info.st_dev,
        "i": info.st_ino,
        "l": info.st_nlink,
        "r": getattr(info, "st_rdev", 0),
        "z": info.st_size,
        "b": getattr(info, "st_blocks", 0),
        "k": getattr(info, "st_blksize", 4096),
        "f": 0,
        "v": 0,
    }
    if field in numbers:
        return _number(numbers[field], conversion or "D", alternate)
    if field == "N":
        return path
    if field == "T":
        return _type_char(mode)
    if field == "Y":
        if stat_module.S_ISLNK(mode):
            target = os.readlink(path)
            return target if conversion == "S" or conversion is None else f" -> {target}"
        return ""
    if field == "Z":
        rdev = getattr(info, "st_rdev", 0)
        return f"{os.major(rdev)},{os.minor(rdev)}"
    raise ValueError(field)


def render(format_text: str, info: os.stat_result, path: str) -> str:
    out = []
    index = 0
    while index < len(format_text):
        char = format_text[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        index += 1
        if index >= len(format_text):
            raise ValueError("%")
        if format_text[index] == "%":
            out.append("%")
            index += 1
            continue
        if format_text[index] in "nt":
            out.append("\n" if format_text[index] == "n" else "\t")
            index += 1
            continue
        flags = ""
        while index < len(format_text) and format_text[index] in "#+-0 ":
            flags += format_text[index]
            index += 1
        width = ""
        while index < len(format_text) and format_text[index].isdigit():
            width += format_text[index]
            index += 1
        if index < len(format_text) and format_text[index] == ".":
            index += 1
            while index < len(format_text) and format_text[index].isdigit():
                index += 1
        conversion = None
        if index < len(format_text) and format_text[index] in "DOUXFS":
            conversion = format_text[index]
            index += 1
        sub = None
        if index < len(format_text) and format_text[index] in "HLM":
            sub = format_text[index]
            index += 1
        if index >= len(format_text):
            raise ValueError(format_text)
        text = _field(info, path, format_text[index], conversion, sub, "#" in flags)
        index += 1
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        out.append(text)
    return "".join(out)


def main(argv: list[str]) -> int:
    follow = no_newline = quiet = False
    format_text = DEFAULT_FORMAT
    options = GetOpt(argv, "Ff:Lnqt:")
    try:
        for letter, value in options:
            if letter == "f":
                format_text = value
            elif letter == "L":
                follow = True
            elif letter == "n":
                no_newline = True
            elif letter == "q":
                quiet = True
    except UsageError as error:
        return error.report(PROGRAM, USAGE, 1)
    paths = options.operands
    if not paths:
        sys.stderr.write(USAGE)
        return 1
    status = 0
    for path in paths:
        try:
            info = os.stat(path) if follow else os.lstat(path)
        except OSError as error:
            status = 1
            if not quiet:
                call = "stat" if follow else "lstat"
                sys.stderr.write(f"{PROGRAM}: {path}: {call}: {error.strerror}\n")
            continue
        try:
            text = render(format_text, info, path)
        except ValueError:
            sys.stderr.write(f"{PROGRAM}: {format_text}: bad format\n")
            return 1
        sys.stdout.write(text if no_newline else text + "\n")
    return status
