"""The in-process shell of the emulated phone (mksh's behaviour, toybox's commands).

Every path a command, a redirect, a glob or ``cd`` touches goes through
``Sandbox.to_host``; no host process is started except the simulated genie-t2t-run (our own
Python module). That is what confines the shell: ``cd /; cat etc/passwd``, paths in
variables and symlinks pushed over sync all resolve inside the sandbox.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.emulator.fs import SandboxError
from qwenchat.emulator.shell import parser as P
from qwenchat.emulator.shell.streams import (
    BytesReader,
    CollectWriter,
    Hangup,
    HostFileReader,
    NullWriter,
    Pipe,
    QuotaFileWriter,
)

if TYPE_CHECKING:
    from qwenchat.emulator.phone import Phone

SH = "/system/bin/sh"
GENIE_MARKER = b"# qwenchat-emulator: simulated genie-t2t-run"
GENIE_MODULE_ENV = "QWENCHAT_EMU_GENIE_MODULE"
DEFAULT_GENIE_MODULE = "qwenchat.emulator.genie_sim"
# Host variables the launched Python needs; the emulated shell can never override them.
HOST_ESSENTIALS = (
    "PATH",
    "HOME",
    "PYTHONPATH",
    "QWENCHAT_CACHE",
    GENIE_MODULE_ENV,
    "LANG",
    "LC_ALL",
)
# The shell's variables reach the genie through this bootstrap, set in os.environ only after
# the host's dynamic loader and Python have started: an emulated LD_LIBRARY_PATH,
# LD_PRELOAD or PYTHONSTARTUP pointing into the sandbox can then never load code on the host.
_BOOTSTRAP = (
    "import json,os,runpy,sys\n"
    "os.environ.update(json.loads(os.environ.pop('QWENCHAT_EMU_SHELL_ENV','{}')))\n"
    "mod=sys.argv[1]; sys.argv=[mod]+sys.argv[2:]\n"
    "runpy.run_module(mod, run_name='__main__', alter_sys=True)\n"
)
DEFAULT_PATH = (
    "/product/bin:/apex/com.android.runtime/bin:/apex/com.android.art/bin:/system_ext/bin:"
    "/system/bin:/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin"
)
DEFAULT_ENV = {
    "PATH": DEFAULT_PATH,
    "HOME": "/",
    "USER": "shell",
    "LOGNAME": "shell",
    "SHELL": "/bin/sh",
    "HOSTNAME": "localhost",
    "TMPDIR": "/data/local/tmp",
    "ANDROID_DATA": "/data",
    "ANDROID_ROOT": "/system",
    "ANDROID_STORAGE": "/storage",
    "EXTERNAL_STORAGE": "/sdcard",
    "ANDROID_ASSETS": "/system/app",
}
READ_ONLY_ROOTS = ("/system", "/vendor", "/product", "/apex", "/odm", "/system_ext")
WRITABLE_ROOTS = ("/data/local/tmp", "/sdcard", "/storage")


class ExitShell(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Cancel:
    """SIGHUP/TERM/KILL delivery: set on this shell, or on the shell it runs inside."""

    def __init__(self, parent: Cancel | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent
        self._sig = 0

    def set(self, sig: int = signal.SIGHUP) -> None:
        self._sig = self._sig or sig
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.is_set())

    @property
    def sig(self) -> int:
        if self._event.is_set():
            return self._sig
        return self._parent.sig if self._parent is not None else 0

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as a signal arrives."""
        deadline = _now() + timeout
        while not self.is_set():
            left = deadline - _now()
            if left <= 0:
                return False
            self._event.wait(min(left, 0.05))
        return True


def _now() -> float:
    import time

    return time.monotonic()


@dataclass
class Resolved:
    host: Path
    emu: str  # the emulated path after symlinks were resolved inside the sandbox
    display: str  # the path as the user wrote it (error messages)

    def lstat(self) -> os.stat_result | None:
        try:
            return os.lstat(self.host)
        except OSError:
            return None

    def exists(self) -> bool:
        return self.lstat() is not None


def quote_value(value: str) -> str:
    import shlex

    return shlex.quote(value)


def os_error(exc: OSError, display: str) -> OSError:
    """The same error named by the emulated path, never by a host path."""
    code = exc.errno or errno.EIO
    return OSError(code, os.strerror(code), display)


@dataclass
class Ctx:
    """What a command sees: its arguments, its three streams and the shell around it."""

    sh: Interp
    argv: list[str]
    stdin: object
    stdout: object
    stderr: object
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.argv[0]

    @property
    def args(self) -> list[str]:
        return self.argv[1:]

    @property
    def phone(self) -> Phone:
        return self.sh.phone

    def out(self, data: bytes | str) -> None:
        self.sh.check()
        self.stdout.write(data.encode() if isinstance(data, str) else data)

    def err(self, message: str) -> None:
        self.stderr.write(f"{self.name}: {message}\n".encode())

    def oserr(self, exc: OSError, display: str | None = None) -> int:
        name = display if display is not None else exc.filename
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
        self.err(f"{name}: {reason}" if name else reason)
        return 1

    def check(self) -> None:
        self.sh.check()

    def resolve(self, path: str, *, follow: bool = True) -> Resolved:
        return self.sh.resolve(path, follow=follow)

    def read_all(self, path: str) -> bytes:
        reader = self.sh.open_read(path)
        try:
            return reader.read()
        finally:
            reader.close()

    def stdin_bytes(self) -> bytes:
        return self.stdin.read()

    def run_argv(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        return self.sh.run_argv(argv, [self.stdin, self.stdout, self.stderr], env or {})


class Interp:
    """One shell: its variables, cwd and pid. Subshells are copies sharing the phone."""

    def __init__(
        self,
        phone: Phone,
        *,
        pid: int,
        cancel: Cancel,
        variables: dict[str, str] | None = None,
        exported: set[str] | None = None,
        cwd: str = "/",
        positional: list[str] | None = None,
        arg0: str = SH,
    ) -> None:
        self.phone = phone
        self.sandbox = phone.sandbox
        self.pid = pid
        self.cancel = cancel
        if variables is None:
            variables = dict(DEFAULT_ENV)
            exported = set(DEFAULT_ENV)
        self.vars = variables
        self.exported = exported if exported is not None else set()
        self.cwd = cwd
        self.positional = positional or []
        self.arg0 = arg0
        self.status = 0
        self.last_bg: int | None = None
        self.errexit = False
        self.background: list[threading.Thread] = []
        self.children: dict[int, threading.Event] = {}  # launched pids -> exited
        # set by a background job: called once with the job's pid (real for a launched genie)
        self.pid_hook: Callable[[int | None], None] | None = None
        self.bg_jobs: dict[int, threading.Thread] = {}  # $! -> job thread (for `wait PID`)
        self.vars["PWD"] = cwd

    # ---- state ------------------------------------------------------------------------------

    def subshell(self, *, cancel: Cancel | None = None, pid: int | None = None) -> Interp:
        sub = Interp(
            self.phone,
            pid=self.pid if pid is None else pid,
            cancel=cancel or self.cancel,
            variables=dict(self.vars),
            exported=set(self.exported),
            cwd=self.cwd,
            positional=list(self.positional),
            arg0=self.arg0,
        )
        sub.status = self.status
        sub.last_bg = self.last_bg
        sub.errexit = self.errexit
        return sub

    def check(self) -> None:
        if self.cancel.is_set():
            raise Hangup(self.cancel.sig)

    def exported_env(self) -> dict[str, str]:
        return {k: v for k, v in self.vars.items() if k in self.exported}

    # ---- paths ------------------------------------------------------------------------------

    def resolve(self, path: str, *, follow: bool = True) -> Resolved:
        if path == "":
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        follow = follow or path.endswith(("/", "/.")) or path in (".", "..")
        try:
            host = self.sandbox.to_host(path, self.cwd, follow_last=follow)
        except SandboxError as exc:
            raise os_error(exc, path) from None
        rel = host.relative_to(self.sandbox.fs_root).as_posix()
        emu = "/" if rel == "." else "/" + rel
        return Resolved(host, emu, path)

    def check_writable(self, res: Resolved) -> None:
        """The shell user may write only where a phone's `shell` user may."""
        emu = res.emu
        if any(emu == r or emu.startswith(r + "/") for r in READ_ONLY_ROOTS):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), res.display)
        if self.phone.is_virtual(emu) or not any(
            emu == r or emu.startswith(r + "/") for r in WRITABLE_ROOTS
        ):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), res.display)

    def open_read(self, path: str):
        if path == "/dev/null":
            return BytesReader(b"")
        res = self.resolve(path)
        if res.emu == "/dev/null":
            return BytesReader(b"")
        try:
            virtual = self.phone.virtual_file(res.emu)
        except OSError as exc:
            raise os_error(exc, path) from None
        if virtual is not None:
            return BytesReader(virtual)
        try:
            if stat.S_ISDIR(os.stat(res.host).st_mode):
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            # O_NOFOLLOW: a link swapped in after resolution (a racing sync) is refused
            fd = os.open(res.host, os.O_RDONLY | os.O_NOFOLLOW)
            return HostFileReader(os.fdopen(fd, "rb"))
        except OSError as exc:
            raise os_error(exc, path) from None

    def open_write(self, path: str, *, append: bool = False):
        if path == "/dev/null":
            return NullWriter()
        res = self.resolve(path)
        if res.emu == "/dev/null":
            return NullWriter()
        self.check_writable(res)
        try:
            st = os.stat(res.host)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise os_error(exc, path) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        try:
            flags = (
                os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
            )
            fh = os.fdopen(os.open(res.host, flags, 0o644), "ab" if append else "wb")
        except OSError as exc:
            raise os_error(exc, path) from None
        if st is not None and not append and st.st_size:
            self.phone.note_written(-st.st_size)
        return QuotaFileWriter(fh, self.phone, path)

    # ---- expansion --------------------------------------------------------------------------

    def get_var(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(self.pid)
        if name == "!":
            return "" if self.last_bg is None else str(self.last_bg)
        if name == "#":
            return str(len(self.positional))
        if name == "0":
            return self.arg0
        if name.isdigit():
            idx = int(name) - 1
            return self.positional[idx] if idx < len(self.positional) else None
        if name in ("@", "*"):
            return " ".join(self.positional)
        return self.vars.get(name)

    def expand_param(self, part: P.Param) -> str:
        value = self.get_var(part.name)
        if part.op == "#len":
            return str(len(value or ""))
        if part.op in (":-", ":=", ":+"):
            empty = not value
        else:
            empty = value is None
        if part.op in (":-", "-") and empty:
            return self.expand_nosplit(part.arg)
        if part.op in (":=", "=") and empty:
            value = self.expand_nosplit(part.arg)
            self.vars[part.name] = value
            return value
        if part.op in (":+", "+"):
            return "" if empty else self.expand_nosplit(part.arg)
        return value or ""

    def command_substitution(self, source: str) -> str:
        sub = self.subshell()
        out = CollectWriter()
        err = self.stderr_for_subst
        status = sub.run_source(source, [BytesReader(b""), out, err])
        self.status = status
        return out.getvalue().decode("utf-8", errors="surrogateescape").rstrip("\n")

    stderr_for_subst: object = NullWriter()

    def arith(self, source: str) -> str:
        import re

        def repl(m: re.Match) -> str:
            val = self.get_var(m.group(1) or m.group(2)) or "0"
            return val if val.lstrip("-").isdigit() else "0"

        text = re.sub(r"\$\{?(\w+)\}?|\b([A-Za-z_]\w*)\b", repl, source)
        if not re.fullmatch(r"[\d\s+\-*/%()<>=!&|]*", text):
            raise ValueError(f"{source}: bad arithmetic")
        text = text.replace("/", "//").replace("&&", " and ").replace("||", " or ")
        text = text.replace("!=", "\x00").replace("!", " not ").replace("\x00", "!=")
        value = eval(compile(text or "0", "<arith>", "eval"), {"__builtins__": {}}, {})  # noqa: S307
        return str(int(value))

    def part_value(self, part: P.Part) -> str:
        if isinstance(part, P.Param):
            return self.expand_param(part)
        if isinstance(part, P.CmdSub):
            return self.command_substitution(part.source)
        if isinstance(part, P.Arith):
            return self.arith(part.source)
        return part.text

    def expand_nosplit(self, word: P.Word | None) -> str:
        if word is None:
            return ""
        return "".join(self.part_value(p) for p in word.parts)

    def expand_words(self, words: list[P.Word]) -> list[str]:
        result: list[str] = []
        for word in words:
            for chars in self._fields(word):
                result.extend(self._glob(chars))
        return result

    def _fields(self, word: P.Word) -> list[list[tuple[str, bool]]]:
        """Fields after word splitting; each char knows if it may act as a glob char."""
        fields: list[list[tuple[str, bool]]] = []
        current: list[tuple[str, bool]] = []
        started = False

        def end_field() -> None:
            nonlocal current, started
            if started:
                fields.append(current)
            current, started = [], False

        for part in word.parts:
            if isinstance(part, P.Lit):
                current.extend((c, not part.quoted) for c in part.text)
                started = True
                continue
            if isinstance(part, P.Param) and part.name == "@" and part.quoted and not part.op:
                for i, arg in enumerate(self.positional):
                    if i:
                        end_field()
                    current.extend((c, False) for c in arg)
                    started = True
                continue
            value = self.part_value(part)
            if part.quoted:
                current.extend((c, False) for c in value)
                started = True
                continue
            if not value:
                continue
            pieces = value.split()
            if value[0] in " \t\n":
                end_field()
            for i, piece in enumerate(pieces):
                if i:
                    end_field()
                current.extend((c, True) for c in piece)
                started = True
            if value[-1] in " \t\n":
                end_field()
        end_field()
        return fields

    def _glob(self, chars: list[tuple[str, bool]]) -> list[str]:
        text = "".join(c for c, _ in chars)
        if not any(active and c in "*?[" for c, active in chars):
            return [text]
        components: list[list[tuple[str, bool]]] = [[]]
        for c, active in chars:
            if c == "/":
                components.append([])
            else:
                components[-1].append((c, active))
        absolute = text.startswith("/")
        if absolute:
            components = components[1:]
        matches = [("/" if absolute else "", "/" if absolute else self.cwd)]
        for i, comp in enumerate(components):
            last = i == len(components) - 1
            magic = any(active and c in "*?[" for c, active in comp)
            literal = "".join(c for c, _ in comp)
            pattern = "".join(
                c if active else (f"[{c}]" if c in "*?[" else c) for c, active in comp
            )
            nxt: list[tuple[str, str]] = []
            for shown, emu in matches:
                if not magic:
                    if literal == "" and not last:
                        continue
                    nxt.append(
                        (shown + literal + ("" if last else "/"), emu.rstrip("/") + "/" + literal)
                    )
                    continue
                try:
                    res = self.resolve(emu)
                    names = sorted(os.listdir(res.host))
                except OSError:
                    continue
                for name in names:
                    if name.startswith(".") and not pattern.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, pattern):
                        nxt.append(
                            (shown + name + ("" if last else "/"), res.emu.rstrip("/") + "/" + name)
                        )
            matches = nxt
        found = []
        for shown, emu in matches:
            try:
                if self.resolve(emu, follow=False).exists():
                    found.append(shown)
            except OSError:
                pass
        return sorted(found) or [text]

    # ---- running ----------------------------------------------------------------------------

    def run_source(self, source: str, io: list, *, catch_exit: bool = True) -> int:
        try:
            tree = P.parse(source)
        except P.ParseError as exc:
            io[2].write(f"{SH}: {exc}\n".encode())
            self.status = 1
            return 1
        try:
            return self.run_list(tree, io)
        except ExitShell as exc:
            self.status = exc.code
            if not catch_exit:
                raise
            return exc.code

    def run_list(self, node: P.CommandList, io: list, *, condition: bool = False) -> int:
        status = self.status
        for and_or, background in node.items:
            self.check()
            if background:
                self.start_background(and_or, io)
                status = 0
            else:
                status = self.run_and_or(and_or, io, condition=condition)
            self.status = status
        return status

    def run_and_or(self, node: P.AndOr, io: list, *, condition: bool = False) -> int:
        status = self.run_pipeline(node.first, io)
        exempt = bool(node.rest) or node.first.negate
        for op, pipeline in node.rest:
            self.status = status
            if (op == "&&") == (status == 0):
                status = self.run_pipeline(pipeline, io)
                exempt = op != "&&" or pipeline is not node.rest[-1][1] or pipeline.negate
        self.status = status
        if self.errexit and status != 0 and not condition and not exempt:
            raise ExitShell(status)
        return status

    def run_pipeline(self, node: P.Pipeline, io: list) -> int:
        cmds = node.commands
        if len(cmds) == 1:
            status = self.run_command(cmds[0], io)
        else:
            status = self._run_multi(cmds, io)
        if node.negate:
            status = 0 if status else 1
        self.status = status
        return status

    def _run_multi(self, cmds: list[P.Command], io: list) -> int:
        pipes = [Pipe(cancel=self.cancel) for _ in cmds[:-1]]
        threads = []
        statuses = [0] * len(cmds)

        def stage(i: int, sub: Interp, stage_io: list) -> None:
            try:
                statuses[i] = sub.run_command(cmds[i], stage_io)
            except ExitShell as exc:
                statuses[i] = exc.code
            except Hangup:
                statuses[i] = 129
            except BrokenPipeError:
                statuses[i] = 141
            finally:
                if i < len(cmds) - 1:
                    pipes[i].close_write()
                if i > 0:
                    pipes[i - 1].close_read()

        for i in range(len(cmds) - 1):
            stdin = io[0] if i == 0 else pipes[i - 1].reader()
            t = threading.Thread(
                target=stage,
                args=(i, self.subshell(), [stdin, pipes[i].writer(), io[2]]),
                daemon=True,
            )
            t.start()
            threads.append(t)
        # The last stage runs in this shell (as in ksh: `echo x | read v` sets v here).
        try:
            statuses[-1] = self.run_command(cmds[-1], [pipes[-1].reader(), io[1], io[2]])
        except BrokenPipeError:
            statuses[-1] = 141
        finally:
            pipes[-1].close_read()
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
                    if self.cancel.is_set():
                        for p in pipes:
                            p.close_read()
                            p.close_write()
                        break
        self.check()
        return statuses[-1]

    def run_command(self, cmd: P.Command, io: list) -> int:
        if isinstance(cmd, P.Simple):
            return self.run_simple(cmd, io)
        io, opened = self.apply_redirects(cmd.redirects, io)
        if io is None:
            return 1
        try:
            if isinstance(cmd, P.Group):
                if cmd.subshell:
                    sub = self.subshell()
                    try:
                        return sub.run_list(cmd.body, io)
                    except ExitShell as exc:
                        return exc.code
                return self.run_list(cmd.body, io)
            if isinstance(cmd, P.If):
                for cond, body in cmd.branches:
                    if self.run_list(cond, io, condition=True) == 0:
                        return self.run_list(body, io)
                if cmd.orelse is not None:
                    return self.run_list(cmd.orelse, io)
                return 0
            if isinstance(cmd, P.Loop):
                status = 0
                while True:
                    self.check()
                    ok = self.run_list(cmd.cond, io, condition=True) == 0
                    if ok == cmd.until:
                        return status
                    status = self.run_list(cmd.body, io)
            if isinstance(cmd, P.For):
                items = self.positional if cmd.items is None else self.expand_words(cmd.items)
                status = 0
                for item in items:
                    self.check()
                    self.vars[cmd.var] = item
                    status = self.run_list(cmd.body, io)
                return status
            raise TypeError(cmd)
        finally:
            for f in opened:
                f.close()

    def apply_redirects(self, redirects: list[P.Redirect], io: list) -> tuple[list | None, list]:
        io = list(io)
        opened = []
        for r in redirects:
            target = self.expand_nosplit(r.target)
            try:
                if r.op in (">&", "<&"):
                    if target == "-":
                        io[r.fd] = NullWriter() if r.op == ">&" else BytesReader(b"")
                    elif target.isdigit() and int(target) < 3:
                        io[r.fd] = io[int(target)]
                    elif r.op == ">&":  # `>&file`: both streams to a file
                        f = self.open_write(target)
                        opened.append(f)
                        io[1] = io[2] = f
                    else:
                        raise OSError(errno.EBADF, os.strerror(errno.EBADF), target)
                elif r.op in (">", ">>"):
                    f = self.open_write(target, append=r.op == ">>")
                    opened.append(f)
                    if r.fd < 3:
                        io[r.fd] = f
                elif r.op == "<":
                    f = self.open_read(target)
                    opened.append(f)
                    if r.fd < 3:
                        io[r.fd] = f
            except OSError as exc:
                verb = "open" if r.op.startswith("<") else "create"
                io[2].write(f"{SH}: can't {verb} {target}: {exc.strerror}\n".encode())
                for f in opened:
                    f.close()
                return None, []
        return io, opened

    def run_simple(self, cmd: P.Simple, io: list) -> int:
        assigns = [(name, self.expand_nosplit(value)) for name, value in cmd.assigns]
        argv = self.expand_words(cmd.words)
        if not argv:
            for name, value in assigns:
                self.vars[name] = value
            new_io, opened = self.apply_redirects(cmd.redirects, io)
            for f in opened:
                f.close()
            return 1 if new_io is None else (self.status if cmd.assigns else 0)
        new_io, opened = self.apply_redirects(cmd.redirects, io)
        if new_io is None:
            return 1
        try:
            return self.run_argv(argv, new_io, dict(assigns))
        finally:
            for f in opened:
                f.close()

    def run_argv(self, argv: list[str], io: list, env: dict[str, str]) -> int:
        from qwenchat.emulator.shell import builtins, commands

        name = argv[0]
        special = builtins.SPECIAL.get(name)
        if special is not None:
            self._report_pid(None)
            return special(self, argv, io, env)
        if "/" not in name:
            func = commands.REGISTRY.get(name)
            if func is not None:
                self._report_pid(None)
                return self.run_builtin(func, argv, io, env)
            path = self.search_path(name, env)
            if path is None:
                io[2].write(f"{SH}: {name}: inaccessible or not found\n".encode())
                return 127
            return self.exec_file(path, argv, io, env)
        return self.exec_file(name, argv, io, env)

    def run_builtin(self, func, argv: list[str], io: list, env: dict[str, str]) -> int:
        ctx = Ctx(self, argv, io[0], io[1], io[2], env)
        try:
            return func(ctx)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            ctx.oserr(exc)
            return 1

    def search_path(self, name: str, env: dict[str, str]) -> str | None:
        for d in env.get("PATH", self.vars.get("PATH", "")).split(":"):
            if not d:
                continue
            candidate = d.rstrip("/") + "/" + name
            try:
                res = self.resolve(candidate)
            except OSError:
                continue
            st = res.lstat()
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                return candidate
        return None

    # ---- executing files --------------------------------------------------------------------

    def exec_file(self, path: str, argv: list[str], io: list, env: dict[str, str]) -> int:
        def fail(reason: str, code: int) -> int:
            io[2].write(f"{SH}: {argv[0]}: {reason}\n".encode())
            self._report_pid(None)
            return code

        try:
            res = self.resolve(path)
        except OSError:
            return fail("inaccessible or not found", 127)
        st = res.lstat()
        if st is None:
            return fail("inaccessible or not found", 127)
        if stat.S_ISDIR(st.st_mode):
            return fail("can't execute: Is a directory", 126)
        if not st.st_mode & 0o111 or self.phone.is_virtual(res.emu):
            return fail("can't execute: Permission denied", 126)
        try:
            with os.fdopen(os.open(res.host, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
                head = fh.read(256)
        except OSError as exc:
            return fail(f"can't execute: {exc.strerror}", 126)
        if GENIE_MARKER in head:
            return self.launch_genie(res, argv, io, env)
        first = head.split(b"\n", 1)[0]
        if first.startswith(b"#!") and first[2:].strip().split(b" ")[0] in (
            b"/system/bin/sh",
            b"/bin/sh",
        ):
            self._report_pid(None)
            return self.run_script(path, argv[1:], io, env)
        return fail("can't execute: Exec format error", 126)

    def run_script(self, path: str, args: list[str], io: list, env: dict[str, str]) -> int:
        try:
            source = self.open_read(path).read().decode("utf-8", errors="surrogateescape")
        except OSError as exc:
            io[2].write(f"{SH}: {path}: {exc.strerror}\n".encode())
            return 127
        sub = self.new_shell(env, arg0=path, positional=args)
        return sub.run_script_source(source, io)

    def new_shell(
        self, env: dict[str, str], *, arg0: str = SH, positional: list[str] | None = None
    ) -> Interp:
        """A child `sh` process: exported variables only, its own pid in the table."""
        variables = {**self.exported_env(), **env}
        sub = Interp(
            self.phone,
            pid=0,
            cancel=Cancel(self.cancel),
            variables=variables,
            exported=set(variables),
            cwd=self.cwd,
            positional=positional,
            arg0=arg0,
        )
        return sub

    def run_script_source(self, source: str, io: list) -> int:
        self.pid = self.phone.processes.add_shell(
            [SH, self.arg0, *self.positional], self.cancel.set
        )
        try:
            return self.run_source(source, io)
        finally:
            self.wait_background()
            self.phone.processes.remove(self.pid)

    def launch_genie(self, res: Resolved, argv: list[str], io: list, env: dict[str, str]) -> int:
        module = os.environ.get(GENIE_MODULE_ENV, DEFAULT_GENIE_MODULE)
        shell_env = {**self.exported_env(), **env}
        host_env = {k: os.environ[k] for k in HOST_ESSENTIALS if k in os.environ}
        emulated = {k: v for k, v in shell_env.items() if k not in host_env}
        host_env.update(
            QWENCHAT_EMU_SHELL_ENV=json.dumps(emulated),
            QWENCHAT_EMU_ROOT=str(self.phone.config.root),
            QWENCHAT_EMU_CWD=self.cwd,
            QWENCHAT_EMU_EXE=res.emu,
            PYTHONUNBUFFERED="1",
        )
        try:
            cwd_host = self.resolve(self.cwd).host
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, module, *argv[1:]],
                cwd=cwd_host,
                env=host_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as exc:
            io[2].write(f"{SH}: {argv[0]}: can't execute: {exc.strerror}\n".encode())
            self._report_pid(None)
            return 126
        name = os.path.basename(res.emu)
        table = self.phone.processes
        table.add_child(proc, name, [argv[0], *argv[1:]], ppid=self.pid)
        done = threading.Event()
        self.children[proc.pid] = done
        self._report_pid(proc.pid)

        def forward(fd_obj, writer) -> None:
            fd = fd_obj.fileno()
            broken = False
            while True:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                if broken:
                    continue  # the stream is gone; keep draining so the child never blocks
                try:
                    writer.write(chunk)
                except Exception:  # Hangup, EPIPE, ENOSPC: output is dropped from now on
                    broken = True
            fd_obj.close()

        forwarders = [
            threading.Thread(target=forward, args=(proc.stdout, io[1]), daemon=True),
            threading.Thread(target=forward, args=(proc.stderr, io[2]), daemon=True),
        ]
        for t in forwarders:
            t.start()

        def reap() -> None:
            proc.wait()
            for t in forwarders:
                t.join(5)
            table.remove(proc.pid)
            done.set()

        threading.Thread(target=reap, daemon=True).start()
        # Wait as sh does; on SIGHUP the shell stops waiting and the child lives on.
        while not done.wait(0.05):
            self.check()
        rc = proc.returncode
        return 128 - rc if rc < 0 else rc

    # ---- background jobs --------------------------------------------------------------------

    def _report_pid(self, pid: int | None) -> None:
        hook, self.pid_hook = self.pid_hook, None
        if hook is not None:
            hook(pid)

    def start_background(self, node: P.AndOr, io: list) -> None:
        sub = self.subshell(cancel=Cancel(self.cancel))
        table = self.phone.processes
        simple = (
            not node.rest
            and len(node.first.commands) == 1
            and isinstance(node.first.commands[0], P.Simple)
        )
        ready = threading.Event()
        job_pid: list[int] = []
        pseudo: list[int] = []

        def hook(pid: int | None) -> None:
            if pid is None:
                pid = table.add_shell([SH], sub.cancel.set, ppid=self.pid)
                pseudo.append(pid)
            job_pid.append(pid)
            ready.set()

        if simple:
            sub.pid_hook = hook
        else:
            hook(None)
        bg_io = [BytesReader(b""), io[1], io[2]]

        def body() -> None:
            try:
                sub.run_and_or(node, bg_io)
            except (ExitShell, Hangup, BrokenPipeError, OSError):
                pass
            finally:
                sub._report_pid(None)
                sub.wait_background()
                for pid in pseudo:
                    table.remove(pid)

        t = threading.Thread(target=body, daemon=True)
        t.start()
        self.background.append(t)
        while not ready.wait(0.05):
            if not t.is_alive():
                break
        self.last_bg = job_pid[0] if job_pid else None
        if self.last_bg is not None:
            self.bg_jobs[self.last_bg] = t

    def wait_background(self) -> None:
        for t in list(self.background):
            while t.is_alive():
                t.join(0.05)
                if self.cancel.is_set():
                    return

    def detach_background(self) -> None:
        self.background.clear()


__all__ = ["Interp", "Ctx", "Cancel", "ExitShell", "Hangup"]
