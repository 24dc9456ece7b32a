"""Toybox commands of the emulated phone, with a real phone's messages and exit codes.

Each command takes a ``Ctx`` and returns its exit status. Paths go through ``ctx.resolve``
(the Sandbox) or ``ctx.sh.open_read``/``open_write``; host paths never appear in output.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Callable
from datetime import datetime

from qwenchat.emulator.shell.interpreter import Ctx

Command = Callable[[Ctx], int]
REGISTRY: dict[str, Command] = {}
CHUNK = 64 * 1024


def command(*names: str):
    def deco(func: Command) -> Command:
        for n in names:
            REGISTRY[n] = func
        return func

    return deco


def split_flags(
    args: list[str], flags: str, with_value: str = ""
) -> tuple[set[str], dict[str, str], list[str]]:
    """Toybox-style option parsing: grouped short flags, values for ``with_value``, `--`."""
    seen: set[str] = set()
    values: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i + 1 :])
            break
        if a.startswith("-") and len(a) > 1 and not a[1].isdigit():
            j = 1
            while j < len(a):
                c = a[j]
                if c in with_value:
                    value = (
                        a[j + 1 :] if j + 1 < len(a) else (args[i + 1] if i + 1 < len(args) else "")
                    )
                    if j + 1 >= len(a):
                        i += 1
                    values[c] = value
                    break
                if c not in flags:
                    raise UsageError(f"Unknown option '{c}'")
                seen.add(c)
                j += 1
        else:
            rest.append(a)
        i += 1
    return seen, values, rest


class UsageError(Exception):
    pass


def usage_guard(func: Command) -> Command:
    def wrapper(ctx: Ctx) -> int:
        try:
            return func(ctx)
        except UsageError as exc:
            ctx.err(str(exc))
            return 1

    wrapper.__name__ = func.__name__
    return wrapper


def stream_inputs(ctx: Ctx, files: list[str]):
    """(display name, chunks iterator) for each input; '-' or nothing is stdin."""
    for name in files or ["-"]:
        if name == "-":
            yield name, _iter_reader(ctx, ctx.stdin, close=False)
            continue
        try:
            reader = ctx.sh.open_read(name)
        except OSError as exc:
            yield name, exc
            continue
        yield name, _iter_reader(ctx, reader, close=True)


def _iter_reader(ctx: Ctx, reader, close: bool):
    try:
        while True:
            ctx.check()
            chunk = reader.read(CHUNK)
            if not chunk:
                return
            yield chunk
    finally:
        if close:
            reader.close()


def read_input(ctx: Ctx, name: str) -> bytes:
    if name == "-":
        return ctx.stdin.read()
    return ctx.read_all(name)


# ---- output -----------------------------------------------------------------------------


@command("true")
def c_true(ctx: Ctx) -> int:
    return 0


@command("false")
def c_false(ctx: Ctx) -> int:
    return 1


def _escapes(text: str) -> tuple[str, bool]:
    """echo -e / printf escapes; second value True when \\c stops output."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        n = text[i + 1]
        simple = {
            "n": "\n",
            "t": "\t",
            "r": "\r",
            "\\": "\\",
            "a": "\a",
            "b": "\b",
            "f": "\f",
            "v": "\v",
            "e": "\x1b",
        }
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n == "c":
            return "".join(out), True
        elif n == "0" or n in "1234567":
            j = i + 2 if n == "0" else i + 1
            digits = ""
            while j < len(text) and len(digits) < 3 and text[j] in "01234567":
                digits += text[j]
                j += 1
            out.append(chr(int(digits or "0", 8)))
            i = j
        elif n == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2 :])
            if m:
                out.append(chr(int(m.group(0), 16)))
                i += 2 + len(m.group(0))
            else:
                out.append("\\x")
                i += 2
        else:
            out.append("\\" + n)
            i += 2
    return "".join(out), False


@command("echo")
def c_echo(ctx: Ctx) -> int:
    args = ctx.args
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for f in args[0][1:]:
            newline = newline and f != "n"
            escapes = (escapes or f == "e") and f != "E"
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text, stop = _escapes(text)
        if stop:
            newline = False
    ctx.out((text + ("\n" if newline else "")).encode("utf-8", errors="surrogateescape"))
    return 0


@command("printf")
def c_printf(ctx: Ctx) -> int:
    if not ctx.args:
        ctx.err("needs 1 argument")
        return 1
    fmt, args = ctx.args[0], list(ctx.args[1:])
    spec = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+))?([sdiuxXocfgeEb%])")
    out: list[str] = []
    status = 0
    while True:
        consumed = 0
        pos = 0
        for m in spec.finditer(fmt):
            text, stop = _escapes(fmt[pos : m.start()])
            out.append(text)
            if stop:
                ctx.out("".join(out))
                return status
            pos = m.end()
            flags, width, prec, conv = m.groups()
            if conv == "%":
                out.append("%")
                continue
            arg = args[consumed] if consumed < len(args) else ""
            consumed += 1
            pyspec = "%" + flags + (width or "") + (f".{prec}" if prec else "")
            if conv == "s":
                out.append((pyspec + "s") % arg)
            elif conv == "b":
                out.append((pyspec + "s") % _escapes(arg)[0])
            elif conv == "c":
                out.append(arg[:1])
            elif conv in "diuxXo":
                try:
                    num = int(arg, 0) if arg else 0
                except ValueError:
                    ctx.err(f"invalid number '{arg}'")
                    status, num = 1, 0
                out.append((pyspec + ("d" if conv in "iu" else conv)) % num)
            else:
                try:
                    fnum = float(arg) if arg else 0.0
                except ValueError:
                    ctx.err(f"invalid number '{arg}'")
                    status, fnum = 1, 0.0
                out.append((pyspec + conv) % fnum)
        text, stop = _escapes(fmt[pos:])
        out.append(text)
        args = args[consumed:]
        if stop or not args or consumed == 0:
            break
    ctx.out("".join(out).encode("utf-8", errors="surrogateescape"))
    return status


@command("cat")
def c_cat(ctx: Ctx) -> int:
    files = [a for a in ctx.args if a not in ("-u",)]
    status = 0
    for name, chunks in stream_inputs(ctx, files):
        if isinstance(chunks, OSError):
            ctx.oserr(chunks, name)
            status = 1
            continue
        try:
            for chunk in chunks:
                ctx.out(chunk)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            ctx.oserr(exc, name)
            status = 1
    return status


@command("tee")
def c_tee(ctx: Ctx) -> int:
    append = "-a" in ctx.args
    outs = []
    status = 0
    for name in [a for a in ctx.args if a != "-a"]:
        try:
            outs.append(ctx.sh.open_write(name, append=append))
        except OSError as exc:
            status = ctx.oserr(exc, name)
    try:
        for chunk in _iter_reader(ctx, ctx.stdin, close=False):
            ctx.out(chunk)
            for o in outs:
                o.write(chunk)
    finally:
        for o in outs:
            o.close()
    return status


# ---- files and directories ---------------------------------------------------------------


def _mode_string(mode: int) -> str:
    kind = "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "-"
    bits = ""
    for shift in (6, 3, 0):
        part = (mode >> shift) & 7
        bits += ("r" if part & 4 else "-") + ("w" if part & 2 else "-") + ("x" if part & 1 else "-")
    return kind + bits


def _long_line(ctx: Ctx, name: str, st: os.stat_result, link: str | None) -> str:
    when = datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M")
    size = st.st_size if not stat.S_ISDIR(st.st_mode) else 4096
    nlink = st.st_nlink
    line = f"{_mode_string(st.st_mode)} {nlink:>2} shell shell {size:>8} {when} {name}"
    return line + (f" -> {link}" if link is not None else "")


@command("ls")
@usage_guard
def c_ls(ctx: Ctx) -> int:
    flags, _, paths = split_flags(ctx.args, "laA1dhRtrsFn")
    long = "l" in flags or "n" in flags
    show_all = "a" in flags
    almost = "A" in flags
    status = 0
    files: list[tuple[str, os.stat_result, str | None]] = []
    dirs: list[tuple[str, object]] = []
    for p in paths or ["."]:
        try:
            res = ctx.resolve(p, follow=False)
            lst = os.lstat(res.host)
        except OSError:
            ctx.err(f"{p}: No such file or directory")
            status = 1
            continue
        link = os.readlink(res.host) if stat.S_ISLNK(lst.st_mode) else None
        target_is_dir = False
        if link is not None and not (long or "d" in flags):
            try:
                target_is_dir = stat.S_ISDIR(os.stat(ctx.resolve(p).host).st_mode)
            except OSError:
                pass
        if "d" in flags or not (stat.S_ISDIR(lst.st_mode) or target_is_dir):
            files.append((p, lst, link))
        else:
            dirs.append((p, ctx.resolve(p)))
    for name, st, link in files:
        ctx.out((_long_line(ctx, name, st, link) if long else name) + "\n")
    for i, (p, res) in enumerate(dirs):
        if len(paths) > 1:
            ctx.out(("\n" if files or i else "") + f"{p}:\n")
        try:
            names = sorted(os.listdir(res.host))
        except OSError as exc:
            status = ctx.oserr(exc, p)
            continue
        if not (show_all or almost):
            names = [n for n in names if not n.startswith(".")]
        if show_all:
            names = [".", ".."] + names
        if long:
            entries = []
            total = 0
            for n in names:
                host = res.host if n in (".", "..") else res.host / n
                try:
                    st = os.lstat(host)
                except OSError:
                    continue
                total += (st.st_blocks * 512 + 1023) // 1024
                link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else None
                entries.append(_long_line(ctx, n, st, link))
            ctx.out(f"total {total}\n" + "".join(e + "\n" for e in entries))
        else:
            ctx.out("".join(n + "\n" for n in names))
    return status


@command("mkdir")
@usage_guard
def c_mkdir(ctx: Ctx) -> int:
    flags, values, paths = split_flags(ctx.args, "pv", "m")
    mode = int(values["m"], 8) if "m" in values else 0o775
    status = 0
    if not paths:
        ctx.err("Needs 1 argument")
        return 1
    for p in paths:
        try:
            res = ctx.resolve(p)
            if "p" in flags:
                # create each missing component through the sandbox (symlinks stay inside)
                parts = ctx.sh.sandbox.normalize(p, ctx.sh.cwd).strip("/").split("/")
                cur = ""
                for part in parts:
                    cur += "/" + part
                    r = ctx.resolve(cur)
                    if os.path.isdir(r.host):
                        continue
                    ctx.sh.check_writable(Resolved_named(r, p))
                    os.mkdir(r.host, mode)
            else:
                if os.path.lexists(res.host):
                    raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), p)
                ctx.sh.check_writable(res)
                os.mkdir(res.host, mode)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                ctx.err(f"'{p}': File exists")
            else:
                ctx.err(f"'{p}': {exc.strerror}")
            status = 1
    return status


def Resolved_named(res, display: str):  # noqa: N802 - small helper: same path, user's name
    res.display = display
    return res


def _tree_size(host) -> int:
    total = 0
    st = os.lstat(host)
    if stat.S_ISDIR(st.st_mode):
        for dirpath, _dirs, files in os.walk(host):
            for f in files:
                try:
                    s = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                if stat.S_ISREG(s.st_mode):
                    total += s.st_size
    elif stat.S_ISREG(st.st_mode):
        total = st.st_size
    return total


@command("rm")
@usage_guard
def c_rm(ctx: Ctx) -> int:
    flags, _, paths = split_flags(ctx.args, "rRfiv")
    recursive = bool(flags & {"r", "R"})
    force = "f" in flags
    status = 0
    if not paths and not force:
        ctx.err("Needs 1 argument")
        return 1
    for p in paths:
        try:
            res = ctx.resolve(p, follow=False)
            st = os.lstat(res.host)
        except OSError:
            if not force:
                ctx.err(f"{p}: No such file or directory")
                status = 1
            continue
        try:
            if res.emu == "/":
                raise OSError(errno.EACCES, os.strerror(errno.EACCES), p)
            ctx.sh.check_writable(res)
            if stat.S_ISDIR(st.st_mode):
                if not recursive:
                    ctx.err(f"{p}: Is a directory")
                    status = 1
                    continue
                freed = _tree_size(res.host)
                shutil.rmtree(res.host)
            else:
                freed = st.st_size if stat.S_ISREG(st.st_mode) else 0
                os.unlink(res.host)
            ctx.phone.note_written(-freed)
        except OSError as exc:
            ctx.err(f"{p}: {exc.strerror}")
            status = 1
    return status


@command("rmdir")
@usage_guard
def c_rmdir(ctx: Ctx) -> int:
    _, _, paths = split_flags(ctx.args, "p")
    status = 0
    for p in paths:
        try:
            res = ctx.resolve(p, follow=False)
            ctx.sh.check_writable(res)
            os.rmdir(res.host)
        except OSError as exc:
            ctx.err(f"{p}: {exc.strerror}")
            status = 1
    return status


def _dest(ctx: Ctx, src: str, dst: str):
    res = ctx.resolve(dst)
    if os.path.isdir(res.host):
        return ctx.resolve(dst.rstrip("/") + "/" + os.path.basename(src.rstrip("/")), follow=False)
    return ctx.resolve(dst, follow=False)


@command("mv")
@usage_guard
def c_mv(ctx: Ctx) -> int:
    _, _, paths = split_flags(ctx.args, "fivn")
    if len(paths) < 2:
        ctx.err("Needs 2 arguments")
        return 1
    status = 0
    for src in paths[:-1]:
        try:
            s = ctx.resolve(src, follow=False)
            if not s.exists():
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), src)
            d = _dest(ctx, src, paths[-1])
            ctx.sh.check_writable(s)
            ctx.sh.check_writable(d)
            if os.path.isfile(d.host) and not os.path.islink(d.host):
                ctx.phone.note_written(-os.lstat(d.host).st_size)
            os.replace(s.host, d.host)
        except OSError as exc:
            ctx.err(f"{src}: {exc.strerror}")
            status = 1
    return status


def _copy_file(ctx: Ctx, src_display: str, dst_res) -> None:
    reader = ctx.sh.open_read(src_display)
    try:
        writer = ctx.sh.open_write(dst_res.emu)
        try:
            while True:
                ctx.check()
                chunk = reader.read(CHUNK)
                if not chunk:
                    break
                writer.write(chunk)
        finally:
            writer.close()
    finally:
        reader.close()


@command("cp")
@usage_guard
def c_cp(ctx: Ctx) -> int:
    flags, _, paths = split_flags(ctx.args, "rRfpaiv")
    if len(paths) < 2:
        ctx.err("Needs 2 arguments")
        return 1
    recursive = bool(flags & {"r", "R", "a"})
    status = 0
    for src in paths[:-1]:
        try:
            s = ctx.resolve(src)
            if not s.exists():
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), src)
            d = _dest(ctx, src, paths[-1])
            if os.path.isdir(s.host):
                if not recursive:
                    ctx.err(f"'{src}': Is a directory (-r)")
                    status = 1
                    continue
                _copy_tree(ctx, s.emu, d.emu)
            else:
                _copy_file(ctx, s.emu, d)
                os.chmod(d.host, os.stat(s.host).st_mode & 0o777)
        except OSError as exc:
            ctx.err(f"{exc.filename or src}: {exc.strerror}")
            status = 1
    return status


def _copy_tree(ctx: Ctx, src_emu: str, dst_emu: str) -> None:
    d = ctx.resolve(dst_emu)
    ctx.sh.check_writable(d)
    os.makedirs(d.host, exist_ok=True)
    for name in sorted(os.listdir(ctx.resolve(src_emu).host)):
        s = ctx.resolve(f"{src_emu}/{name}", follow=False)
        st = os.lstat(s.host)
        if stat.S_ISLNK(st.st_mode):  # copied as a link: its target is re-read in the sandbox
            os.symlink(os.readlink(s.host), ctx.resolve(f"{dst_emu}/{name}", follow=False).host)
        elif stat.S_ISDIR(st.st_mode):
            _copy_tree(ctx, s.emu, f"{dst_emu}/{name}")
        else:
            _copy_file(ctx, s.emu, ctx.resolve(f"{dst_emu}/{name}", follow=False))


@command("ln")
@usage_guard
def c_ln(ctx: Ctx) -> int:
    flags, _, paths = split_flags(ctx.args, "sfnTv")
    if "s" not in flags:
        ctx.err("hard links are not supported here (use -s)")
        return 1
    if len(paths) == 1:
        paths.append(".")
    if len(paths) != 2:
        ctx.err("Needs 2 arguments")
        return 1
    target, name = paths
    try:
        d = _dest(ctx, target, name)
        ctx.sh.check_writable(d)
        if os.path.lexists(d.host):
            if "f" not in flags:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), name)
            os.unlink(d.host)
        os.symlink(target, d.host)  # stored as given; the Sandbox re-reads it inside
    except OSError as exc:
        ctx.err(f"cannot create symlink '{name}': {exc.strerror}")
        return 1
    return 0


def _chmod_value(spec: str, mode: int, is_dir: bool) -> int:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    for clause in spec.split(","):
        m = re.fullmatch(r"([ugoa]*)([-+=])([rwxX]*)", clause)
        if not m:
            raise ValueError(spec)
        who, op, perms = m.groups()
        who = who or "a"
        bits = 0
        for p in perms:
            if p == "X" and not (is_dir or mode & 0o111):
                continue
            bit = {"r": 4, "w": 2, "x": 1, "X": 1}[p]
            for w, shift in (("u", 6), ("g", 3), ("o", 0)):
                if w in who or "a" in who:
                    bits |= bit << shift
        mask = 0
        for w, shift in (("u", 6), ("g", 3), ("o", 0)):
            if w in who or "a" in who:
                mask |= 7 << shift
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~mask) | bits
    return mode


@command("chmod")
def c_chmod(ctx: Ctx) -> int:
    args = [a for a in ctx.args if a not in ("-R", "-v", "-f")]
    recursive = "-R" in ctx.args
    if len(args) < 2:
        ctx.err("Needs 2 arguments")
        return 1
    spec, paths = args[0], args[1:]
    status = 0
    for p in paths:
        try:
            res = ctx.resolve(p)
            ctx.sh.check_writable(res)
            targets = [res.host]
            if recursive and os.path.isdir(res.host):
                for dirpath, dirs, files in os.walk(res.host):
                    targets += [os.path.join(dirpath, n) for n in dirs + files]
            for t in targets:
                if os.path.islink(t):
                    continue
                st = os.stat(t)
                os.chmod(t, _chmod_value(spec, st.st_mode & 0o7777, stat.S_ISDIR(st.st_mode)))
        except ValueError:
            ctx.err(f"bad mode '{spec}'")
            return 1
        except OSError as exc:
            ctx.err(f"{p}: {exc.strerror}")
            status = 1
    return status


@command("touch")
def c_touch(ctx: Ctx) -> int:
    status = 0
    paths = [a for a in ctx.args if not a.startswith("-")]
    for p in paths:
        try:
            res = ctx.resolve(p)
            if res.exists():
                ctx.sh.check_writable(res)
                os.utime(res.host)
            else:
                ctx.sh.open_write(p, append=True).close()
        except OSError as exc:
            ctx.err(f"'{p}': {exc.strerror}")
            status = 1
    return status


_FILE_TYPES = {
    stat.S_IFREG: "regular file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symbolic link",
}


def _stat_format(fmt: str, name: str, st: os.stat_result, link: str | None) -> str:
    def field(c: str) -> str:
        return {
            "s": str(st.st_size),
            "Y": str(int(st.st_mtime)),
            "X": str(int(st.st_atime)),
            "Z": str(int(st.st_ctime)),
            "a": f"{st.st_mode & 0o7777:o}",
            "A": _mode_string(st.st_mode),
            "f": f"{st.st_mode:x}",
            "n": name,
            "N": f"'{name}'" + (f" -> '{link}'" if link else ""),
            "F": _FILE_TYPES.get(stat.S_IFMT(st.st_mode), "file"),
            "U": "shell",
            "G": "shell",
            "u": "2000",
            "g": "2000",
            "b": str(st.st_blocks),
            "B": "512",
            "i": str(st.st_ino),
            "h": str(st.st_nlink),
            "y": datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M:%S.%f000 %z"),
            "%": "%",
        }.get(c, "?")

    return re.sub(r"%(.)", lambda m: field(m.group(1)), fmt)


@command("stat")
@usage_guard
def c_stat(ctx: Ctx) -> int:
    flags, values, paths = split_flags(ctx.args, "Lt", "c")
    status = 0
    for p in paths:
        try:
            res = ctx.resolve(p, follow="L" in flags)
            st = os.lstat(res.host)
        except OSError:
            ctx.err(f"{p}: No such file or directory")
            status = 1
            continue
        link = os.readlink(res.host) if stat.S_ISLNK(st.st_mode) else None
        if "c" in values:
            ctx.out(_stat_format(values["c"], p, st, link) + "\n")
        else:
            fmt = (
                "  File: %N\n  Size: %s\t Blocks: %b\t IO Blocks: 4096\t%F\n"
                "Access: (0%a/%A)\tUid: ( 2000/   shell)\tGid: ( 2000/   shell)\nModify: %y\n"
            )
            ctx.out(_stat_format(fmt, p, st, link))
    return status


@command("wc")
@usage_guard
def c_wc(ctx: Ctx) -> int:
    flags, _, files = split_flags(ctx.args, "clwm")
    if not flags:
        flags = {"l", "w", "c"}
    status = 0
    totals = [0, 0, 0]
    rows = []
    for name, chunks in stream_inputs(ctx, files):
        if isinstance(chunks, OSError):
            status = ctx.oserr(chunks, name)
            continue
        lines = words = size = 0
        in_word = False
        for chunk in chunks:
            size += len(chunk)
            lines += chunk.count(b"\n")
            if "w" in flags:
                for b in chunk:
                    space = b in b" \t\n\r\v\f"
                    if not space and not in_word:
                        words += 1
                    in_word = not space
        counts = [lines, words, size]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        rows.append((counts, "" if name == "-" else name))
    if len(rows) > 1:
        rows.append((totals, "total"))
    for counts, name in rows:
        picked = [
            str(c)
            for c, f in zip(counts, ("l", "w", "c"), strict=True)
            if f in flags or (f == "c" and "m" in flags)
        ]
        width = 7 if len(picked) > 1 or len(rows) > 1 else 0
        text = " ".join(s.rjust(width) for s in picked)
        ctx.out(text + (f" {name}" if name else "") + "\n")
    return status


def _count_arg(args: list[str]) -> tuple[str, int, bool, list[str]]:
    """(-n or -c, count, from_start '+N', files) for head/tail."""
    kind, count, plus, files = "n", 10, False, []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-n", "-c") and i + 1 < len(args):
            kind, value = a[1], args[i + 1]
            i += 2
        elif re.fullmatch(r"-[nc][+-]?\d+", a):
            kind, value = a[1], a[2:]
            i += 1
        elif re.fullmatch(r"-\d+", a):
            kind, value = "n", a[1:]
            i += 1
        else:
            files.append(a)
            i += 1
            continue
        plus = value.startswith("+")
        count = abs(int(value))
    return kind, count, plus, files


@command("head")
def c_head(ctx: Ctx) -> int:
    kind, count, _, files = _count_arg(ctx.args)
    status = 0
    for idx, name in enumerate(files or ["-"]):
        try:
            reader = ctx.stdin if name == "-" else ctx.sh.open_read(name)
            data = _head_prefix(ctx, reader, kind, count)
            if name != "-":
                reader.close()
        except OSError as exc:
            status = ctx.oserr(exc, name)
            continue
        if len(files) > 1:
            ctx.out(("\n" if idx else "") + f"==> {name} <==\n")
        if kind == "c":
            ctx.out(data[:count])
        else:
            ctx.out(b"".join(data.splitlines(keepends=True)[:count]))
    return status


def _head_prefix(ctx: Ctx, reader, kind: str, count: int) -> bytes:
    """Read only what head prints, so `cat big | head -n 1` ends the writer early."""
    data = bytearray()
    while True:
        have = len(data) if kind == "c" else data.count(b"\n")
        if have >= count:
            break
        ctx.check()
        chunk = reader.read(CHUNK)
        if not chunk:
            break
        data += chunk
    return bytes(data)


@command("tail")
def c_tail(ctx: Ctx) -> int:
    kind, count, plus, files = _count_arg(ctx.args)
    status = 0
    for idx, name in enumerate(files or ["-"]):
        try:
            data = read_input(ctx, name)
        except OSError as exc:
            status = ctx.oserr(exc, name)
            continue
        if len(files) > 1:
            ctx.out(("\n" if idx else "") + f"==> {name} <==\n")
        if kind == "c":
            ctx.out(data[count - 1 :] if plus else (data[-count:] if count else b""))
        else:
            lines = data.splitlines(keepends=True)
            ctx.out(b"".join(lines[count - 1 :] if plus else (lines[-count:] if count else [])))
    return status


def _hash_command(algo: str) -> Command:
    def run(ctx: Ctx) -> int:
        status = 0
        files = [a for a in ctx.args if a not in ("-b",)]
        for name, chunks in stream_inputs(ctx, files):
            if isinstance(chunks, OSError):
                status = ctx.oserr(chunks, name)
                continue
            h = hashlib.new(algo)
            try:
                for chunk in chunks:
                    h.update(chunk)
            except OSError as exc:
                status = ctx.oserr(exc, name)
                continue
            ctx.out(f"{h.hexdigest()}  {name}\n")
        return status

    return run


REGISTRY["sha256sum"] = _hash_command("sha256")
REGISTRY["md5sum"] = _hash_command("md5")
REGISTRY["sha1sum"] = _hash_command("sha1")


def _data_fs(ctx: Ctx) -> tuple[int, int, int]:
    """(total, used, available) bytes of /data: capacity config.free_mb, free = free_bytes()."""
    total = ctx.phone.config.free_mb * 1024 * 1024
    avail = ctx.phone.free_bytes()
    return total, total - avail, avail


def _human(n: int) -> str:
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "" or value >= 10 else f"{value:.1f}{unit}"
        value /= 1024
    return str(n)


@command("df")
@usage_guard
def c_df(ctx: Ctx) -> int:
    flags, _, paths = split_flags(ctx.args, "hkaPt")
    total, used, avail = _data_fs(ctx)
    mounts = {"/data": ("/dev/block/dm-48", total, used, avail), "/": ("/dev/root", 0, 0, 0)}
    rows = []
    status = 0
    for p in paths or ["/data"]:
        try:
            res = ctx.resolve(p)
            if not res.exists():
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), p)
        except OSError:
            ctx.err(f"{p}: No such file or directory")
            status = 1
            continue
        on_data = any(
            res.emu == r or res.emu.startswith(r + "/") for r in ("/data", "/sdcard", "/storage")
        )
        rows.append("/data" if on_data else "/")
    if "h" in flags:
        ctx.out("Filesystem        Size  Used Avail Use% Mounted on\n")
    else:
        ctx.out("Filesystem       1K-blocks    Used Available Use% Mounted on\n")
    for mount in rows:
        dev, t, u, a = mounts[mount]
        pct = f"{(u * 100 + t - 1) // t if t else 0}%"
        if "h" in flags:
            ctx.out(f"{dev:<16} {_human(t):>5} {_human(u):>5} {_human(a):>5} {pct:>4} {mount}\n")
        else:
            ctx.out(f"{dev:<16} {t // 1024:>9} {u // 1024:>7} {a // 1024:>9} {pct:>4} {mount}\n")
    return status


@command("du")
@usage_guard
def c_du(ctx: Ctx) -> int:
    flags, _, paths = split_flags(ctx.args, "skhacxbm")
    status = 0
    for p in paths or ["."]:
        try:
            res = ctx.resolve(p)
            size = _tree_size(res.host)
        except OSError:
            ctx.err(f"{p}: No such file or directory")
            status = 1
            continue
        shown = (
            _human(size) if "h" in flags else str(size if "b" in flags else (size + 1023) // 1024)
        )
        ctx.out(f"{shown}\t{p}\n")
    return status


@command("find")
def c_find(ctx: Ctx) -> int:
    args = list(ctx.args)
    roots = []
    while args and not args[0].startswith("-") and args[0] not in ("!", "("):
        roots.append(args.pop(0))
    name_pat = type_ = None
    maxdepth = None
    while args:
        a = args.pop(0)
        if a in ("-name", "-iname") and args:
            name_pat = args.pop(0)
        elif a == "-type" and args:
            type_ = args.pop(0)
        elif a == "-maxdepth" and args:
            maxdepth = int(args.pop(0))
        elif a == "-print":
            continue
        else:
            ctx.err(f"Unknown option '{a}'")
            return 1
    import fnmatch

    status = 0
    for root in roots or ["."]:
        try:
            res = ctx.resolve(root)
            os.lstat(res.host)
        except OSError:
            ctx.err(f"'{root}': No such file or directory")
            status = 1
            continue

        def visit(host, shown: str, depth: int) -> None:
            ctx.check()
            st = os.lstat(host)
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            base = os.path.basename(shown.rstrip("/")) or shown
            if (name_pat is None or fnmatch.fnmatchcase(base, name_pat)) and (
                type_ in (None, kind)
            ):
                ctx.out(shown + "\n")
            if kind == "d" and (maxdepth is None or depth < maxdepth):
                for n in sorted(os.listdir(host)):
                    visit(os.path.join(host, n), shown.rstrip("/") + "/" + n, depth + 1)

        visit(res.host, root, 0)
    return status


@command("grep", "egrep", "fgrep")
@usage_guard
def c_grep(ctx: Ctx) -> int:
    flags, values, rest = split_flags(ctx.args, "qcvEFinlHhowsx", "e")
    if ctx.name == "fgrep":
        flags.add("F")
    if "e" in values:
        pattern = values["e"]
    elif rest:
        pattern = rest.pop(0)
    else:
        ctx.err("no pattern")
        return 2
    text = re.escape(pattern) if "F" in flags else pattern
    if "E" not in flags and "F" not in flags and ctx.name != "egrep":
        text = text.replace(r"\(", "(").replace(r"\)", ")").replace(r"\|", "|").replace(r"\+", "+")
    if "w" in flags:
        text = rf"\b(?:{text})\b"
    if "x" in flags:
        text = rf"^(?:{text})$"
    try:
        rx = re.compile(text.encode(), re.IGNORECASE if "i" in flags else 0)
    except re.error:
        ctx.err(f"bad regex '{pattern}'")
        return 2
    matched_any = False
    status = 0
    show_name = (len(rest) > 1 or "H" in flags) and "h" not in flags
    for name in rest or ["-"]:
        try:
            data = read_input(ctx, name)
        except OSError as exc:
            if "s" not in flags:
                ctx.oserr(exc, name)
            status = 2
            continue
        count = 0
        for lineno, line in enumerate(data.splitlines(), 1):
            hit = rx.search(line) is not None
            if hit == ("v" in flags):
                continue
            count += 1
            matched_any = True
            if "q" in flags:
                return 0
            if "c" in flags or "l" in flags:
                continue
            prefix = (f"{name}:" if show_name else "") + (f"{lineno}:" if "n" in flags else "")
            if "o" in flags and "v" not in flags:
                for m in rx.finditer(line):
                    ctx.out(prefix.encode() + m.group(0) + b"\n")
            else:
                ctx.out(prefix.encode() + line + b"\n")
        if "c" in flags:
            ctx.out((f"{name}:" if show_name else "") + f"{count}\n")
        elif "l" in flags and count:
            ctx.out(f"{name}\n")
    if status == 2 and not matched_any:
        return 2
    return 0 if matched_any else 1


@command("sort")
def c_sort(ctx: Ctx) -> int:
    flags = {c for a in ctx.args if a.startswith("-") for c in a[1:]}
    files = [a for a in ctx.args if not a.startswith("-")]
    lines: list[bytes] = []
    for name in files or ["-"]:
        try:
            lines += read_input(ctx, name).splitlines()
        except OSError as exc:
            return ctx.oserr(exc, name)
    if "n" in flags:

        def key(line: bytes) -> float:
            m = re.match(rb"\s*(-?\d+(?:\.\d+)?)", line)
            return float(m.group(1)) if m else 0.0

        lines.sort(key=key, reverse="r" in flags)
    else:
        lines.sort(reverse="r" in flags)
    if "u" in flags:
        seen: set[bytes] = set()
        lines = [x for x in lines if not (x in seen or seen.add(x))]
    ctx.out(b"".join(x + b"\n" for x in lines))
    return 0


@command("uniq")
def c_uniq(ctx: Ctx) -> int:
    data = ctx.stdin.read()
    out, prev = [], None
    for line in data.splitlines():
        if line != prev:
            out.append(line)
        prev = line
    ctx.out(b"".join(x + b"\n" for x in out))
    return 0


@command("cut")
@usage_guard
def c_cut(ctx: Ctx) -> int:
    _, values, files = split_flags(ctx.args, "s", "dfc")
    delim = values.get("d", "\t").encode()
    spec = values.get("f") or values.get("c")
    if not spec:
        ctx.err("need -f or -c")
        return 1
    picks: list[tuple[int, int]] = []
    for part in spec.split(","):
        a, dash, b = part.partition("-")
        lo = int(a) if a else 1
        hi = (int(b) if b else 10**9) if dash else lo
        picks.append((lo, hi))
    for name in files or ["-"]:
        try:
            data = read_input(ctx, name)
        except OSError as exc:
            return ctx.oserr(exc, name)
        for line in data.splitlines():
            items = line.split(delim) if "f" in values else [bytes([b]) for b in line]
            if "f" in values and len(items) == 1:
                ctx.out(line + b"\n")
                continue
            chosen = [it for i, it in enumerate(items, 1) if any(lo <= i <= hi for lo, hi in picks)]
            ctx.out((delim if "f" in values else b"").join(chosen) + b"\n")
    return 0


def _tr_set(spec: str) -> str:
    spec, _ = _escapes(spec)
    classes = {
        "[:digit:]": "0123456789",
        "[:lower:]": "abcdefghijklmnopqrstuvwxyz",
        "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "[:space:]": " \t\n\r\v\f",
    }
    for k, v in classes.items():
        spec = spec.replace(k, v)
    out, i = [], 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


@command("tr")
def c_tr(ctx: Ctx) -> int:
    args = list(ctx.args)
    delete = "-d" in args
    args = [a for a in args if a not in ("-d",)]
    if not args:
        ctx.err("Needs 1 argument")
        return 1
    data = ctx.stdin.read().decode("latin-1")
    src = _tr_set(args[0])
    if delete:
        data = data.translate({ord(c): None for c in src})
    else:
        dst = _tr_set(args[1]) if len(args) > 1 else ""
        dst = (dst + dst[-1:] * len(src))[: len(src)] if dst else ""
        data = data.translate({ord(a): b for a, b in zip(src, dst, strict=True)})
    ctx.out(data.encode("latin-1"))
    return 0


@command("xargs")
def c_xargs(ctx: Ctx) -> int:
    args = list(ctx.args)
    per = None
    if len(args) >= 2 and args[0] == "-n":
        per = int(args[1])
        args = args[2:]
    cmd = args or ["echo"]
    items = ctx.stdin.read().decode("utf-8", errors="surrogateescape").split()
    batches = [items[i : i + per] for i in range(0, len(items), per)] if per else [items]
    status = 0
    for batch in batches:
        rc = ctx.sh.run_argv(cmd + batch, [ctx.stdin, ctx.stdout, ctx.stderr], {})
        status = status or (123 if rc else 0)
    return status


@command("basename")
def c_basename(ctx: Ctx) -> int:
    if not ctx.args:
        return 1
    name = ctx.args[0].rstrip("/") or "/"
    name = name.rsplit("/", 1)[-1] or "/"
    if len(ctx.args) > 1 and name.endswith(ctx.args[1]) and name != ctx.args[1]:
        name = name[: -len(ctx.args[1])]
    ctx.out(name + "\n")
    return 0


@command("dirname")
def c_dirname(ctx: Ctx) -> int:
    if not ctx.args:
        return 1
    path = ctx.args[0].rstrip("/")
    ctx.out((path.rsplit("/", 1)[0] if "/" in path else ".") or "/")
    ctx.out("\n")
    return 0


@command("readlink", "realpath")
def c_readlink(ctx: Ctx) -> int:
    canon = ctx.name == "realpath" or any(a in ("-f", "-e", "-m") for a in ctx.args)
    status = 0
    for p in [a for a in ctx.args if not a.startswith("-")]:
        try:
            if canon:
                res = ctx.resolve(p)
                ctx.out(res.emu + "\n")
            else:
                res = ctx.resolve(p, follow=False)
                ctx.out(os.readlink(res.host) + "\n")
        except OSError:
            status = 1
    return status


@command("seq")
def c_seq(ctx: Ctx) -> int:
    nums = [int(a) for a in ctx.args if re.fullmatch(r"-?\d+", a)]
    first, step, last = (
        (1, 1, nums[0])
        if len(nums) == 1
        else (nums[0], 1, nums[1])
        if len(nums) == 2
        else tuple(nums[:3])
    )
    ctx.out("".join(f"{i}\n" for i in range(first, last + (1 if step > 0 else -1), step)))
    return 0


# ---- test --------------------------------------------------------------------------------


@command("test", "[")
def c_test(ctx: Ctx) -> int:
    args = list(ctx.args)
    if ctx.name == "[":
        if not args or args[-1] != "]":
            ctx.err("missing ]")
            return 2
        args = args[:-1]
    try:
        return 0 if _test_or(ctx, args) else 1
    except (ValueError, IndexError) as exc:
        ctx.err(str(exc) or "syntax error")
        return 2


def _test_or(ctx: Ctx, args: list[str]) -> bool:
    if "-o" in args:
        i = args.index("-o")
        return _test_or(ctx, args[:i]) or _test_or(ctx, args[i + 1 :])
    if "-a" in args[1:]:
        i = args.index("-a", 1)
        return _test_or(ctx, args[:i]) and _test_or(ctx, args[i + 1 :])
    return _test_expr(ctx, args)


def _test_expr(ctx: Ctx, args: list[str]) -> bool:
    if not args:
        return False
    if args[0] == "!":
        return not _test_expr(ctx, args[1:])
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2:
        op, arg = args
        if op == "-n":
            return arg != ""
        if op == "-z":
            return arg == ""
        try:
            res = ctx.resolve(arg, follow=op not in ("-L", "-h"))
        except OSError:
            return False
        st = res.lstat()
        if st is None:
            return False
        checks = {
            "-e": True,
            "-f": stat.S_ISREG(st.st_mode),
            "-d": stat.S_ISDIR(st.st_mode),
            "-s": st.st_size > 0 and not stat.S_ISDIR(st.st_mode) or ctx.phone.is_virtual(res.emu),
            "-x": bool(st.st_mode & 0o111),
            "-r": bool(st.st_mode & 0o444),
            "-w": bool(st.st_mode & 0o222) and ctx.phone.writable(res.emu),
            "-L": stat.S_ISLNK(st.st_mode),
            "-h": stat.S_ISLNK(st.st_mode),
        }
        if op not in checks:
            raise ValueError(f"{op}: unknown operand")
        return checks[op]
    if len(args) == 3:
        a, op, b = args
        if op in ("=", "=="):
            return a == b
        if op == "!=":
            return a != b
        ints = {
            "-eq": int.__eq__,
            "-ne": int.__ne__,
            "-lt": int.__lt__,
            "-le": int.__le__,
            "-gt": int.__gt__,
            "-ge": int.__ge__,
        }
        if op in ints:
            try:
                return ints[op](int(a), int(b))
            except ValueError:
                raise ValueError(
                    f"bad number '{a if not a.lstrip('-').isdigit() else b}'"
                ) from None
    raise ValueError("syntax error")


# ---- system ------------------------------------------------------------------------------


@command("pwd")
def c_pwd(ctx: Ctx) -> int:
    ctx.out(ctx.sh.cwd + "\n")
    return 0


@command("sleep")
def c_sleep(ctx: Ctx) -> int:
    total = 0.0
    for a in ctx.args:
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", a)
        if not m:
            ctx.err(f"invalid time interval '{a}'")
            return 1
        total += float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if ctx.sh.cancel.wait(total):
        ctx.check()
    return 0


@command("uname")
def c_uname(ctx: Ctx) -> int:
    flags = {c for a in ctx.args for c in a.lstrip("-")} or {"s"}
    if "a" in flags:
        flags = {"s", "n", "r", "v", "m", "o"}
    fields = {
        "s": "Linux",
        "n": "localhost",
        "r": "6.6.30-android15-qwenchat-SIMULATED",
        "v": "#1 SMP PREEMPT",
        "m": "aarch64",
        "o": "Toybox",
    }
    ctx.out(" ".join(fields[k] for k in "snrvmo" if k in flags) + "\n")
    return 0


ID_LINE = (
    "uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
    "1015(sdcard_rw),1028(sdcard_r),1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),"
    "3002(net_bt),3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs) "
    "context=u:r:shell:s0"
)


@command("id")
def c_id(ctx: Ctx) -> int:
    if "-u" in ctx.args:
        ctx.out("shell\n" if "-n" in ctx.args else "2000\n")
    elif "-g" in ctx.args:
        ctx.out("shell\n" if "-n" in ctx.args else "2000\n")
    else:
        ctx.out(ID_LINE + "\n")
    return 0


@command("whoami")
def c_whoami(ctx: Ctx) -> int:
    ctx.out("shell\n")
    return 0


@command("nproc")
def c_nproc(ctx: Ctx) -> int:
    ctx.out("8\n")
    return 0


@command("sync")
def c_sync(ctx: Ctx) -> int:
    return 0


@command("env")
def c_env(ctx: Ctx) -> int:
    args = list(ctx.args)
    env = {**ctx.sh.exported_env(), **ctx.env}
    if args and args[0] in ("-i", "-"):
        env = {}
        args = args[1:]
    extra = {}
    while args and "=" in args[0] and not args[0].startswith("="):
        k, _, v = args.pop(0).partition("=")
        extra[k] = v
    if args:
        return ctx.sh.run_argv(args, [ctx.stdin, ctx.stdout, ctx.stderr], {**ctx.env, **extra})
    env.update(extra)
    ctx.out("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    return 0


@command("which")
def c_which(ctx: Ctx) -> int:
    from qwenchat.emulator.shell.builtins import SPECIAL, locate

    status = 0
    for name in [a for a in ctx.args if not a.startswith("-")]:
        where = locate(ctx.sh, name)
        if where is None or (where == name and name in SPECIAL):
            status = 1
        else:
            ctx.out(where + "\n")
    return status


@command("date")
def c_date(ctx: Ctx) -> int:
    fmt = next((a[1:] for a in ctx.args if a.startswith("+")), "%a %b %e %H:%M:%S %Z %Y")
    utc = "-u" in ctx.args
    now = datetime.utcnow() if utc else datetime.now().astimezone()
    text = fmt.replace("%s", str(int(time.time()))).replace(
        "%N", f"{time.time_ns() % 1_000_000_000:09d}"
    )
    ctx.out(now.strftime(text).replace("  ", "  ") + "\n")
    return 0


@command("getprop")
def c_getprop(ctx: Ctx) -> int:
    props = ctx.phone.props()
    if not ctx.args:
        ctx.out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())))
        return 0
    default = ctx.args[1] if len(ctx.args) > 1 else ""
    ctx.out(props.get(ctx.args[0], default) + "\n")
    return 0


@command("setprop")
def c_setprop(ctx: Ctx) -> int:
    if len(ctx.args) != 2:
        ctx.err("usage: setprop NAME VALUE")
        return 1
    name, value = ctx.args
    ctx.stderr.write(
        f"Failed to set property '{name}' to '{value}'.\nSee dmesg for error reason.\n".encode()
    )
    return 1


SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "PIPE": 13,
    "ALRM": 14, "TERM": 15, "CONT": 18, "STOP": 19, "TSTP": 20,
}  # fmt: skip


def _signal_number(text: str) -> int | None:
    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        return int(name)
    return SIGNALS.get(name)


@command("kill")
def c_kill(ctx: Ctx) -> int:
    args = list(ctx.args)
    sig = signal.SIGTERM
    if args and args[0] == "-l":
        ctx.out(" ".join(SIGNALS) + "\n")
        return 0
    if args and args[0] == "-s" and len(args) > 1:
        number = _signal_number(args[1])
        if number is None:
            ctx.err(f"Unknown signal '{args[1]}'")
            return 1
        sig, args = number, args[2:]
    elif args and args[0].startswith("-") and len(args[0]) > 1:
        number = _signal_number(args[0][1:])
        if number is None:
            ctx.err(f"Unknown signal '{args[0][1:]}'")
            return 1
        sig, args = number, args[1:]
    if not args:
        ctx.err("usage: kill [-s SIGNAL | -SIGNAL] PID...")
        return 1
    status = 0
    for a in args:
        if not a.isdigit():
            ctx.err(f"invalid pid '{a}'")
            status = 1
            continue
        if not ctx.phone.processes.kill(int(a), sig):
            ctx.err(f"pid {a}: No such process")
            status = 1
    return status


PS_FIELDS = {
    "USER": (lambda p: p.user, 12, "<"),
    "PID": (lambda p: str(p.pid), 5, ">"),
    "PPID": (lambda p: str(p.ppid), 5, ">"),
    "VSZ": (lambda p: "10860000" if p.kind == "child" else "10760000", 8, ">"),
    "RSS": (lambda p: "4512000" if p.kind == "child" else "3248", 7, ">"),
    "WCHAN": (lambda p: "0", 5, "<"),
    "ADDR": (lambda p: "0", 4, "<"),
    "S": (lambda p: "S", 1, "<"),
    "NAME": (lambda p: p.name, 0, "<"),
    "CMD": (lambda p: p.name, 0, "<"),
    "COMM": (lambda p: p.name, 0, "<"),
    "ARGS": (lambda p: p.cmdline, 0, "<"),
    "CMDLINE": (lambda p: p.cmdline, 0, "<"),
}


@command("ps")
def c_ps(ctx: Ctx) -> int:
    args = list(ctx.args)
    cols = ["USER", "PID", "PPID", "VSZ", "RSS", "WCHAN", "ADDR", "S", "NAME"]
    pids: set[int] | None = None
    header = True
    names: set[str] | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-o" and i + 1 < len(args):
            spec = args[i + 1]
            header = not spec.endswith("=")
            cols = [c.rstrip("=").upper() for c in spec.split(",") if c.rstrip("=")]
            i += 2
            continue
        if a == "-p" and i + 1 < len(args):
            pids = {int(x) for x in args[i + 1].split(",") if x.isdigit()}
            i += 2
            continue
        if not a.startswith("-"):
            names = (names or set()) | {a}
        i += 1
    unknown = [c for c in cols if c not in PS_FIELDS]
    if unknown:
        ctx.err(f"bad -o {unknown[0].lower()}")
        return 1
    procs = ctx.phone.processes.list()
    if pids is not None:
        procs = [p for p in procs if p.pid in pids]
    if names is not None:
        procs = [p for p in procs if p.name in names]

    def row(values: list[str]) -> str:
        out = []
        for c, v in zip(cols, values, strict=True):
            _, width, align = PS_FIELDS[c]
            out.append(v if not width else (v.ljust(width) if align == "<" else v.rjust(width)))
        return " ".join(out).rstrip() + "\n"

    text = row(cols) if header else ""
    for p in procs:
        text += row([PS_FIELDS[c][0](p) for c in cols])
    ctx.out(text)
    return 0 if procs or pids is None else 1


@command("pidof")
def c_pidof(ctx: Ctx) -> int:
    pids: list[int] = []
    for name in [a for a in ctx.args if not a.startswith("-")]:
        pids += ctx.phone.processes.pidof(name)
    if not pids:
        return 1
    ctx.out(" ".join(str(p) for p in sorted(pids, reverse=True)) + "\n")
    return 0


@command("dumpsys")
def c_dumpsys(ctx: Ctx) -> int:
    if ctx.args[:1] != ["battery"]:
        ctx.err(f"Can't find service: {ctx.args[0] if ctx.args else ''}")
        return 1
    b = ctx.phone.battery()
    status_code = {"Charging": 2, "Discharging": 3, "Not charging": 4, "Full": 5}.get(
        b["status"], 1
    )
    temp = round(ctx.phone.battery_temp_c() * 10)
    ctx.out(
        "Current Battery Service state:\n"
        f"  AC powered: {str(bool(b['ac'])).lower()}\n"
        f"  USB powered: {str(bool(b['usb'])).lower()}\n"
        "  Wireless powered: false\n"
        "  Max charging current: 500000\n"
        "  Max charging voltage: 5000000\n"
        f"  status: {status_code}\n"
        "  health: 2\n"
        "  present: true\n"
        f"  level: {int(b['level'])}\n"
        "  scale: 100\n"
        "  voltage: 4123\n"
        f"  temperature: {temp}\n"
        "  technology: Li-ion\n"
    )
    return 0


@command("settings")
def c_settings(ctx: Ctx) -> int:
    args = ctx.args
    if len(args) == 3 and args[0] == "get":
        if (args[1], args[2]) == ("global", "low_power"):
            ctx.out("1\n" if ctx.phone.battery().get("power_save") else "0\n")
        else:
            ctx.out("null\n")
        return 0
    if args[:1] == ["put"]:
        ctx.stderr.write(
            b"Security exception: Permission denial: writing settings requires WRITE_SECURE_SETTINGS\n"
        )
        return 255
    ctx.err("usage: settings get NAMESPACE KEY")
    return 1


@command("cmd")
def c_cmd(ctx: Ctx) -> int:
    if ctx.args[:2] == ["power", "is-power-save-mode"]:
        ctx.out("true\n" if ctx.phone.battery().get("power_save") else "false\n")
        return 0
    ctx.err(f"Can't find service: {ctx.args[0] if ctx.args else ''}")
    return 20
