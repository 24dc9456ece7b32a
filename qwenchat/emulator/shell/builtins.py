"""Builtins that change the shell itself (cd, export, exit, exec, sh -c, wait ...)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from qwenchat.emulator.shell import interpreter as I
from qwenchat.emulator.shell.parser import _is_name

Builtin = Callable[["I.Interp", list[str], list, dict[str, str]], int]
SPECIAL: dict[str, Builtin] = {}


def builtin(*names: str):
    def deco(func: Builtin) -> Builtin:
        for n in names:
            SPECIAL[n] = func
        return func

    return deco


def _err(io: list, msg: str) -> None:
    io[2].write(f"{I.SH}: {msg}\n".encode())


@builtin(":")
def b_colon(sh, argv, io, env) -> int:
    return 0


@builtin("cd")
def b_cd(sh, argv, io, env) -> int:
    args = [a for a in argv[1:] if a not in ("-L", "-P")]
    target = args[0] if args else sh.vars.get("HOME", "/")
    if target == "-":
        target = sh.vars.get("OLDPWD", sh.cwd)
    try:
        res = sh.resolve(target)
        st = os.stat(res.host)
    except OSError:
        _err(io, f"cd: {target}: No such file or directory")
        return 2
    if not stat.S_ISDIR(st.st_mode):
        _err(io, f"cd: {target}: Not a directory")
        return 2
    # The physical path (as `cd -P`): a symlinked cwd can never be re-read differently.
    sh.vars["OLDPWD"] = sh.cwd
    sh.cwd = res.emu
    sh.vars["PWD"] = res.emu
    return 0


@builtin("export", "readonly")
def b_export(sh, argv, io, env) -> int:
    args = [a for a in argv[1:] if a != "-p"]
    if not args:
        for k in sorted(sh.exported):
            if k in sh.vars:
                io[1].write(f"export {k}={I.quote_value(sh.vars[k])}\n".encode())
        return 0
    for a in args:
        name, eq, value = a.partition("=")
        if not _is_name(name):
            _err(io, f"export: {a}: is not an identifier")
            return 1
        if eq:
            sh.vars[name] = value
        sh.exported.add(name)
    return 0


@builtin("unset")
def b_unset(sh, argv, io, env) -> int:
    for name in argv[1:]:
        if name in ("-v", "-f"):
            continue
        sh.vars.pop(name, None)
        sh.exported.discard(name)
    return 0


@builtin("exit")
def b_exit(sh, argv, io, env) -> int:
    code = sh.status
    if len(argv) > 1:
        try:
            code = int(argv[1]) & 0xFF
        except ValueError:
            _err(io, f"exit: {argv[1]}: bad number")
            code = 1
    raise I.ExitShell(code)


@builtin("set")
def b_set(sh, argv, io, env) -> int:
    args = argv[1:]
    if not args:
        for k in sorted(sh.vars):
            io[1].write(f"{k}={I.quote_value(sh.vars[k])}\n".encode())
        return 0
    while args and args[0][:1] in "-+" and args[0] != "--":
        flag = args.pop(0)
        if "e" in flag:
            sh.errexit = flag.startswith("-")
    if args and args[0] == "--":
        args.pop(0)
        sh.positional = list(args)
    elif args:
        sh.positional = list(args)
    return 0


@builtin("shift")
def b_shift(sh, argv, io, env) -> int:
    n = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 1
    if n > len(sh.positional):
        return 1
    sh.positional = sh.positional[n:]
    return 0


@builtin("eval")
def b_eval(sh, argv, io, env) -> int:
    return sh.run_source(" ".join(argv[1:]), io) if len(argv) > 1 else 0


@builtin(".", "source")
def b_source(sh, argv, io, env) -> int:
    if len(argv) < 2:
        _err(io, f"{argv[0]}: missing argument")
        return 1
    try:
        source = sh.open_read(argv[1]).read().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        _err(io, f"{argv[1]}: {exc.strerror}")
        return 1
    return sh.run_source(source, io)


@builtin("exec")
def b_exec(sh, argv, io, env) -> int:
    if len(argv) == 1:
        return 0  # `exec >file` style redirections are applied around the builtin only
    raise I.ExitShell(sh.run_argv(argv[1:], io, env))


@builtin("sh", "mksh", "/system/bin/sh", "/bin/sh")
def b_sh(sh, argv, io, env) -> int:
    args = argv[1:]
    if args and args[0] == "-c":
        if len(args) < 2:
            _err(io, "-c: option requires an argument")
            return 1
        sub = sh.new_shell(env, arg0=args[2] if len(args) > 2 else I.SH, positional=args[3:])
        return sub.run_script_source(args[1], io)
    if args:
        return sh.run_script(args[0], args[1:], io, env)
    source = io[0].read().decode("utf-8", errors="surrogateescape")
    return sh.new_shell(env).run_script_source(source, io)


@builtin("wait")
def b_wait(sh, argv, io, env) -> int:
    if len(argv) == 1:
        sh.wait_background()
        return 0
    status = 0
    for a in argv[1:]:
        pid = int(a) if a.isdigit() else -1
        job = sh.bg_jobs.get(pid)
        if job is None:
            _err(io, f"wait: {a}: unknown job")
            status = 127
            continue
        while job.is_alive():
            job.join(0.05)
            sh.check()
    return status


@builtin("read")
def b_read(sh, argv, io, env) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")] or ["REPLY"]
    line = bytearray()
    while True:
        c = io[0].read(1)
        if not c:
            if not line:
                for n in names:
                    sh.vars[n] = ""
                return 1
            break
        if c == b"\n":
            break
        line += c
    text = line.decode("utf-8", errors="surrogateescape")
    fields = text.split(None, len(names) - 1) if names else []
    for i, n in enumerate(names):
        sh.vars[n] = fields[i] if i < len(fields) else ""
    return 0


@builtin("trap", "ulimit", "local")
def b_ignored(sh, argv, io, env) -> int:
    return 0


@builtin("umask")
def b_umask(sh, argv, io, env) -> int:
    if len(argv) == 1:
        io[1].write(b"0077\n")
    return 0


@builtin("command")
def b_command(sh, argv, io, env) -> int:
    args = argv[1:]
    if args and args[0] in ("-v", "-V"):
        status = 0
        for name in args[1:]:
            where = locate(sh, name)
            if where is None:
                status = 1
            else:
                io[1].write(f"{where}\n".encode())
        return status
    return sh.run_argv(args, io, env) if args else 0


@builtin("type")
def b_type(sh, argv, io, env) -> int:
    status = 0
    for name in argv[1:]:
        where = locate(sh, name)
        if where is None:
            io[2].write(f"{name} not found\n".encode())
            status = 1
        elif where == name:
            io[1].write(f"{name} is a shell builtin\n".encode())
        else:
            io[1].write(f"{name} is {where}\n".encode())
    return status


@builtin("nohup")
def b_nohup(sh, argv, io, env) -> int:
    if len(argv) < 2:
        _err(io, "nohup: missing command")
        return 127
    return sh.run_argv(argv[1:], io, env)


def locate(sh, name: str) -> str | None:
    from qwenchat.emulator.shell import commands

    if name in SPECIAL:
        return name
    if name in commands.REGISTRY:
        return f"/system/bin/{name}"
    if "/" in name:
        try:
            st = sh.resolve(name).lstat()
        except OSError:
            return None
        return name if st is not None and st.st_mode & 0o111 else None
    return sh.search_path(name, {})
