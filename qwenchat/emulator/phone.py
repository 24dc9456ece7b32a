"""One emulated phone: its storage, its read-only trees, its sandbox, and what the host
asks of it. Everything here is SIMULATED.

The ADB server (``qwenchat.emulator.adbd``) uses ``spawn`` for ``shell:``/``exec:`` streams
and the file operations for ``sync:``; each one is a request to the phone's init, answered
from inside the sandbox (``phoneinit``), so the kernel resolves every path as the phone's
shell user sees it. Tests use ``sh`` for a quick command.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator import faults as faults_mod
from qwenchat.emulator import phoneinit, rootfs
from qwenchat.emulator.config import EmulatorConfig, Faults, LiveConfig
from qwenchat.emulator.props import build_prop, build_props
from qwenchat.emulator.sandbox import Mounts, Sandbox
from qwenchat.emulator.services import ServiceSocket
from qwenchat.emulator.storage import Storage
from qwenchat.emulator.sysfiles import SysFiles
from qwenchat.emulator.thermal import ThermalModel

log = logging.getLogger("qwenchat.emulator")

SHELL = phoneinit.SHELL
REQUEST_TIMEOUT_S = 60.0
# adbd's environment for shells (Android's init gives adbd these; adbd passes them on).
SHELL_ENV = {
    "PATH": "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/vendor/bin",
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


class PhoneGone(OSError):
    """The phone is not running (stopped, or its sandbox died)."""

    def __init__(self) -> None:
        super().__init__(errno.ENODEV, "the emulated phone is not running")


@dataclass(frozen=True)
class PhoneStat:
    mode: int
    ino: int
    dev: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime: int
    mtime: int
    ctime: int

    @classmethod
    def of(cls, fields: list) -> PhoneStat:
        return cls(*(int(v) for v in fields))


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


class Session:
    """One shell session on the phone, as the host holds it."""

    def __init__(self, pid: int, reply: socket.socket, master: int | None) -> None:
        self.pid = pid  # in the phone's pid namespace
        self.master = master  # the pty's master side, for a pty session
        self._reply = reply
        self._lock = threading.Lock()
        self.exit_code: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """adbd's exit code (128+N for signal N), or None if the session was hung up."""
        if self.exit_code is not None:
            return self.exit_code
        self._reply.settimeout(timeout)
        try:
            msg, fds = phoneinit.recv(self._reply)
        except TimeoutError:
            raise  # still running: the caller decides (TimeoutError is an OSError too)
        except (OSError, ValueError):
            msg, fds = None, []
        for fd in fds:
            os.close(fd)
        if msg is None or "exit" not in msg:
            return None
        code = int(msg["exit"])
        self.exit_code = 128 + (-code) if code < 0 else code & 0xFF
        self.close()
        return self.exit_code

    def signal(self, sig: int) -> None:
        with self._lock:
            try:
                phoneinit.send(self._reply, {"signal": int(sig)})
            except OSError:
                pass

    def hangup(self) -> None:
        """The client went away: the phone's init sends SIGHUP to the shell (as adbd)."""
        self.close()

    def close(self) -> None:
        with self._lock:
            try:
                self._reply.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._reply.close()


class Phone:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.live = LiveConfig(config)
        self.thermal = ThermalModel(config.state_dir, config.time_scale)
        self.storage = Storage(config.root, config.free_mb)
        self.sysfiles = SysFiles(config, self.thermal)
        self.services = ServiceSocket(
            self.live,
            self.thermal,
            config.state_dir / "run" / "qwenchat.sock",
            on_heat=self.sysfiles.update,
        )
        self.sandbox: Sandbox | None = None
        self._props = build_props(config)
        self.live.on_faults_changed.append(self._apply_fail_commands)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Bring the phone up. The caller's thread must outlive the phone: the sandbox dies
        with the thread that started it (bwrap's --die-with-parent is per thread)."""
        config = self.config
        config.fs_root.mkdir(parents=True, exist_ok=True)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.storage.prepare()
            rootfs.build(config.fs_root, build_prop(config), frozenset(config.faults.fail_commands))
            self.sysfiles.start()
            self.services.start()
            self.sandbox = Sandbox(
                Mounts(
                    fs_root=config.fs_root,
                    data=self.storage.phone_source,
                    sys_dir=self.sysfiles.sys_dir,
                    proc_overlays=self.sysfiles.proc_overlays,
                    service_socket=self.services.path,
                )
            )
            self.sandbox.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every phone process (the kernel does: pid 1 ends), then release /data."""
        if self.sandbox is not None:
            self.sandbox.stop()
        self.services.stop()
        self.sysfiles.stop()
        self.storage.release()

    shutdown = stop

    @property
    def running(self) -> bool:
        return self.sandbox is not None and self.sandbox.running

    # ---- talking to the phone's init ---------------------------------------------------------
    def _request(
        self, msg: dict, fds: tuple[int, ...] = (), timeout: float | None = REQUEST_TIMEOUT_S
    ) -> tuple[socket.socket, dict, list[int]]:
        control = self.sandbox.control if self.sandbox is not None else None
        if control is None:
            raise PhoneGone()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            phoneinit.send(control, msg, [theirs.fileno(), *fds])
        except phoneinit.MessageTooLong:
            mine.close()
            raise
        except OSError:
            mine.close()
            raise PhoneGone() from None
        finally:
            theirs.close()
        mine.settimeout(timeout)
        try:
            reply, rfds = phoneinit.recv(mine)
        except (OSError, ValueError):
            mine.close()
            raise PhoneGone() from None
        if reply is None:
            mine.close()
            raise PhoneGone()
        if "errno" in reply:
            mine.close()
            for fd in rfds:
                os.close(fd)
            code = int(reply["errno"])
            raise OSError(code, os.strerror(code), msg.get("path"))
        return mine, reply, rfds

    def _call(self, msg: dict) -> tuple[dict, list[int]]:
        sock, reply, fds = self._request(msg)
        sock.close()
        return reply, fds

    # ---- processes ----------------------------------------------------------------------------
    def spawn(
        self,
        command: str | None,
        *,
        stdio: tuple[int, int, int] | None = None,
        pty: str | None = None,
        env: dict[str, str] | None = None,
        rows: int = 0,
        cols: int = 0,
    ) -> Session:
        """``sh -c COMMAND`` (or an interactive ``sh``) in a new session on the phone.

        ``stdio``: the child's fds 0, 1, 2 (the caller keeps and closes its own copies);
        or ``pty``: "raw" (adbd's shell:/exec:) or "cooked" (an interactive terminal), and
        the session's ``master`` is the host's side of it.
        """
        if (stdio is None) == (pty is None):
            raise ValueError("give stdio or pty")
        # adbd: `sh -c COMMAND`, or a login shell ("-sh") when there is no command.
        argv = [SHELL, "-c", command] if command is not None else ["-sh"]
        full_env = {**SHELL_ENV, **(env or {})}
        if command is None:
            full_env.setdefault("ENV", "/system/etc/mkshrc")  # Android's mksh reads it
        msg = {"op": "spawn", "path": SHELL, "argv": argv, "env": full_env, "pty": pty,
               "rows": rows, "cols": cols}  # fmt: skip
        sock, reply, fds = self._request(msg, tuple(stdio or ()), timeout=REQUEST_TIMEOUT_S)
        sock.settimeout(None)
        master = fds[0] if fds else None
        return Session(int(reply["pid"]), sock, master)

    def sh(self, command: str | None, stdin: bytes = b"", timeout: float = 60.0) -> ShellResult:
        """Run a command as ``adb shell`` would (shell v2: separate stderr, exit code)."""
        host_io, child_io = socket.socketpair()
        host_err, child_err = socket.socketpair()
        try:
            session = self.spawn(
                command, stdio=(child_io.fileno(), child_io.fileno(), child_err.fileno())
            )
        finally:
            child_io.close()
            child_err.close()
        out, err = bytearray(), bytearray()
        sel = selectors.DefaultSelector()
        try:
            host_io.setblocking(False)
            host_err.setblocking(False)
            pending = memoryview(stdin)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if stdin else 0)
            sel.register(host_io, events, out)
            sel.register(host_err, selectors.EVENT_READ, err)
            if not stdin:
                host_io.shutdown(socket.SHUT_WR)
            open_count = 2
            while open_count:
                ready = sel.select(timeout)
                if not ready:
                    session.hangup()
                    raise TimeoutError(f"{command!r} still runs after {timeout} s")
                for key, mask in ready:
                    sock = key.fileobj
                    if mask & selectors.EVENT_WRITE and pending:
                        try:
                            n = sock.send(pending[:65536])
                        except BrokenPipeError:
                            n = len(pending)
                        pending = pending[n:]
                        if not pending:
                            sock.shutdown(socket.SHUT_WR)
                            sel.modify(sock, selectors.EVENT_READ, key.data)
                    if mask & selectors.EVENT_READ:
                        data = sock.recv(65536)
                        if data:
                            key.data.extend(data)
                        else:
                            sel.unregister(sock)
                            open_count -= 1
            code = session.wait(timeout)
        finally:
            sel.close()
            host_io.close()
            host_err.close()
        return ShellResult(code if code is not None else 255, bytes(out), bytes(err))

    # ---- files (sync) -----------------------------------------------------------------------------
    def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
        _reply, fds = self._call({"op": "open", "path": path, "flags": flags, "mode": mode})
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise OSError(errno.EIO, "the phone answered without a file", path)
        return fds[0]

    def create_temp(self, path: str, *, mkdirs: bool = True) -> tuple[int, str]:
        """A new, empty file next to ``path`` (its parents made first); (fd, its name)."""
        reply, fds = self._call({"op": "create_temp", "path": path, "mkdirs": mkdirs})
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise OSError(errno.EIO, "the phone answered without a file", path)
        return fds[0], str(reply["temp"])

    def stat(self, path: str, *, follow: bool = True) -> PhoneStat:
        reply, _ = self._call({"op": "stat", "path": path, "follow": follow})
        return PhoneStat.of(reply["stat"])

    def listdir(self, path: str) -> list[tuple[str, PhoneStat]]:
        sock, reply, _fds = self._request({"op": "list", "path": path})
        entries: list[tuple[str, PhoneStat]] = []
        try:
            while True:
                entries += [(str(n), PhoneStat.of(f)) for n, f in reply.get("entries", [])]
                if reply.get("done"):
                    return entries
                reply, fds = phoneinit.recv(sock)
                for fd in fds:
                    os.close(fd)
                if reply is None:
                    raise PhoneGone()
        finally:
            sock.close()

    def mkdirs(self, path: str) -> None:
        self._call({"op": "mkdirs", "path": path})

    def rename(self, src: str, dst: str) -> None:
        self._call({"op": "rename", "src": src, "dst": dst, "path": dst})

    def unlink(self, path: str) -> None:
        self._call({"op": "unlink", "path": path})

    def symlink(self, target: str, path: str, *, mkdirs: bool = True) -> None:
        self._call({"op": "symlink", "target": target, "path": path, "mkdirs": mkdirs})

    # ---- state the phone reports ---------------------------------------------------------------
    def props(self) -> dict[str, str]:
        return dict(self._props)

    def host_path(self, path: str) -> Path:
        """Where a phone path under /data is on the host (the nosymfollow view), for tests
        and tools; nothing of the emulator itself resolves phone paths on the host."""
        return self.config.fs_root / path.lstrip("/")

    def rescan_usage(self) -> None:
        """Kept for callers of the old emulator (benchmarks/push_speed.py): the filesystem
        itself now counts what /data holds, so there is nothing to rescan."""

    def _apply_fail_commands(self, old: Faults, new: Faults) -> None:
        for name in set(old.fail_commands) - set(new.fail_commands):
            rootfs.set_failing(self.config.fs_root, name, False)
        for name in set(new.fail_commands) - set(old.fail_commands):
            if rootfs.faultable(self.config.fs_root, name):
                rootfs.set_failing(self.config.fs_root, name, True)

    def take_corrupt_bytes(self) -> int | None:
        """The corrupt-bytes fault is one-shot: read and switch it off."""
        config = self.live.refresh()
        n = config.faults.corrupt_bytes
        if n is not None:
            try:
                faults_mod.clear_faults(config.root, "corrupt-bytes")
            except faults_mod.FaultError:
                pass
            config.faults.corrupt_bytes = None
            self.live.refresh()
        return n

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every phone process but init (``kill -1``, as the shell user would)."""
        try:
            self.sh(f"kill -{int(sig)} -1", timeout=10)
        except (OSError, TimeoutError):
            pass
