"""The emulated phone's init: pid 1 of its pid namespace, inside its sandbox, as uid 2000.

Everything the host (the emulator) does ON the phone goes through this one process, so the
kernel resolves every path inside the phone's root and checks it as the phone's shell user:

- ``spawn``: a shell session (``sh -c CMD`` or an interactive ``sh``) in its own session
  (setsid) with the stdio the host passes over SCM_RIGHTS, or with a pseudo-terminal made
  here (adbd's raw pty for ``shell:``/``exec:``, a cooked one for ``shell,pty``). The host
  learns the pid, then the exit status; closing its end hangs the session up (SIGHUP to the
  shell's pid, as adbd does).
- ``open``/``stat``/``list``/``mkdirs``/``rename``/``unlink``/``symlink``: file access for the
  sync service. ``open`` hands the opened fd back over SCM_RIGHTS; the host then reads or
  writes it at full speed. No path is ever resolved on the host: there is no check-then-open.

Being pid 1 means orphans are reaped here and, when this process ends, the kernel kills
every process of the phone. Signals a phone process sends to pid 1 are dropped by the
kernel unless a handler exists: only SIGCHLD has one.

This file runs on the phone's lent Python with ``-S -E -s``: it imports the standard
library only. The host imports it too (as ``qwenchat.emulator.phoneinit``) for the message
format, so both ends share one definition.

Messages: one JSON object per SOCK_SEQPACKET message, file descriptors as SCM_RIGHTS. A
request carries, as its first fd, a fresh socket on which the answer (or, for ``spawn``,
the session's events) comes back, so concurrent host threads never share a reply channel.
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import stat
import sys
import termios
import tty

MAX_MESSAGE = 192 * 1024  # a command line longer than execve's 128 KiB per string fails anyway
MAX_FDS = 8
LIST_CHUNK = 256  # directory entries per message: one message stays far below MAX_MESSAGE
SHELL = "/system/bin/sh"
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4


# --- the message format (shared with the host) ----------------------------------------------
class MessageTooLong(OSError):
    """A request the init could not receive whole (the caller's fault, not a dead phone)."""


def send(sock: socket.socket, obj: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise MessageTooLong(errno.E2BIG, os.strerror(errno.E2BIG))
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], ancillary)


def recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """(message, fds); (None, []) at end of stream. Received fds are close-on-exec."""
    data, ancdata, flags, _addr = sock.recvmsg(
        MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
    )
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(array.array("i", payload[:usable]))
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise ValueError("truncated message")
    return json.loads(data), fds


def stat_fields(s: os.stat_result) -> list:
    return [s.st_mode, s.st_ino, s.st_dev, s.st_nlink, s.st_uid, s.st_gid, s.st_size,
            int(s.st_atime), int(s.st_mtime), int(s.st_ctime)]  # fmt: skip


# --- process title --------------------------------------------------------------------------
def set_process_name(argv: list[str]) -> None:
    """What ``ps`` and ``pidof`` see: comm (PR_SET_NAME) and /proc/self/cmdline.

    The kernel shows cmdline from the process's original argv memory, so the new argv is
    written over it (as setproctitle does); it is never longer than the original here.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    name = os.path.basename(argv[0]).encode()[:15]
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, IndexError, ValueError):
        return
    blob = b"\0".join(a.encode("utf-8", "surrogateescape") for a in argv) + b"\0"
    size = end - start
    if size <= 0 or len(blob) > size:
        return
    ctypes.memmove(start, blob + b"\0" * (size - len(blob)), size)


# --- the init -------------------------------------------------------------------------------
class Session:
    def __init__(self, pid: int, reply: socket.socket) -> None:
        self.pid = pid
        self.reply = reply


def _default_signals() -> set[int]:
    return {s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)}


class Init:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.sessions: dict[int, Session] = {}
        self.by_reply: dict[int, Session] = {}
        self.selector = selectors.DefaultSelector()
        self.sigdef = _default_signals()
        self._wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "sigchld")

    def run(self) -> None:
        send(self.control, {"ready": True, "pid": os.getpid()})
        while True:
            for key, _ in self.selector.select():
                if key.data == "control":
                    if not self._on_control():
                        return  # the host is gone: pid 1 ends, the kernel ends the phone
                elif key.data == "sigchld":
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    self._reap()
                else:
                    self._on_session(key.data)

    # --- requests from the host -------------------------------------------------------------
    def _on_control(self) -> bool:
        try:
            msg, fds = recv(self.control)
        except (OSError, ValueError):
            return True
        if msg is None:
            return False
        if not fds:
            return True  # every request brings its reply socket
        reply = socket.socket(fileno=fds[0])
        extra = fds[1:]
        op = msg.get("op")
        try:
            if op == "spawn":
                self._spawn(msg, reply, extra)
                return True
            handler = FILE_OPS.get(op)
            if handler is None:
                send(reply, {"errno": errno.EINVAL})
            else:
                handler(self, msg, reply)
        except OSError as exc:
            try:
                send(reply, {"errno": exc.errno or errno.EIO})
            except OSError:
                pass
        except (KeyError, TypeError, ValueError):
            try:
                send(reply, {"errno": errno.EINVAL})
            except OSError:
                pass
        finally:
            if op != "spawn":
                reply.close()
                for fd in extra:
                    os.close(fd)
        return True

    def _spawn(self, msg: dict, reply: socket.socket, fds: list[int]) -> None:
        path = str(msg.get("path") or SHELL)
        argv = [str(a) for a in msg["argv"]]
        env = {str(k): str(v) for k, v in msg["env"].items()}
        pty_mode = msg.get("pty")  # None, "raw" or "cooked"
        master = None
        slave_path = None
        try:
            if pty_mode:
                master, slave = os.openpty()
                os.set_inheritable(master, False)
                slave_path = os.ttyname(slave)
                if pty_mode == "raw":
                    tty.setraw(slave, termios.TCSANOW)
                rows, cols = msg.get("rows") or 0, msg.get("cols") or 0
                if rows and cols:
                    fcntl.ioctl(slave, termios.TIOCSWINSZ, array.array("H", [rows, cols, 0, 0]))
                os.close(slave)
                # Opened again by the child after setsid: that makes it the controlling tty.
                actions = [(os.POSIX_SPAWN_OPEN, n, slave_path, os.O_RDWR, 0) for n in (0, 1, 2)]
            else:
                stdin, stdout, stderr = fds[0], fds[1], fds[2]
                actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                           (os.POSIX_SPAWN_DUP2, stderr, 2)]  # fmt: skip
            pid = os.posix_spawn(
                path, argv, env, file_actions=actions, setsid=True,
                setsigdef=self.sigdef, setsigmask=(),
            )  # fmt: skip
        except OSError as exc:
            if master is not None:
                os.close(master)
            send(reply, {"errno": exc.errno or errno.EIO})
            reply.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        session = Session(pid, reply)
        self.sessions[pid] = session
        self.by_reply[reply.fileno()] = session
        self.selector.register(reply, selectors.EVENT_READ, session)
        send(reply, {"pid": pid}, [master] if master is not None else [])
        if master is not None:
            os.close(master)

    def _on_session(self, session: Session) -> None:
        try:
            msg, fds = recv(session.reply)
        except (OSError, ValueError):
            msg, fds = None, []
        for fd in fds:
            os.close(fd)
        if msg is None:
            # The host closed the stream: adbd's "protocol FD died, sending SIGHUP".
            self._signal(session.pid, signal.SIGHUP)
            self._forget(session)
            return
        sig = msg.get("signal")
        if isinstance(sig, int):
            self._signal(session.pid, sig)

    def _signal(self, pid: int, sig: int) -> None:
        if pid in self.sessions:  # never a recycled pid: sessions are forgotten when reaped
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def _forget(self, session: Session) -> None:
        self.by_reply.pop(session.reply.fileno(), None)
        try:
            self.selector.unregister(session.reply)
        except (KeyError, ValueError):
            pass
        session.reply.close()
        session.reply = None  # type: ignore[assignment]

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            session = self.sessions.pop(pid, None)
            if session is None or session.reply is None:
                continue
            try:
                send(session.reply, {"exit": os.waitstatus_to_exitcode(status)})
            except OSError:
                pass
            self._forget(session)


# --- file operations for sync (each answers on the request's reply socket) -----------------
def _path(msg: dict, key: str = "path") -> str:
    value = msg[key]
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(key)
    return value


def op_open(init: Init, msg: dict, reply: socket.socket) -> None:
    flags = int(msg["flags"]) | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not block pid 1
    fd = os.open(_path(msg), flags, int(msg.get("mode", 0o644)))
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        send(reply, {"ok": True}, [fd])
    finally:
        os.close(fd)


def op_create_temp(init: Init, msg: dict, reply: socket.socket) -> None:
    """A new file next to ``path`` (parents made first: adb's fixed_push_mkdir)."""
    path = _path(msg)
    parent = os.path.dirname(path) or "/"
    if msg.get("mkdirs"):
        _makedirs(parent)
    temp = os.path.join(parent, "." + os.path.basename(path) + ".adbd-" + os.urandom(4).hex())
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC  # RDWR: corrupt-bytes
    fd = os.open(temp, flags, 0o600)
    try:
        send(reply, {"ok": True, "temp": temp}, [fd])
    finally:
        os.close(fd)


def op_stat(init: Init, msg: dict, reply: socket.socket) -> None:
    s = os.stat(_path(msg), follow_symlinks=bool(msg.get("follow", True)))
    send(reply, {"stat": stat_fields(s)})


def op_list(init: Init, msg: dict, reply: socket.socket) -> None:
    path = _path(msg)
    entries = [[".", stat_fields(os.stat(path))], ["..", stat_fields(os.stat(path + "/.."))]]
    with os.scandir(path) as it:
        for entry in it:
            try:
                entries.append([entry.name, stat_fields(entry.stat(follow_symlinks=False))])
            except OSError:
                continue
            if len(entries) >= LIST_CHUNK:
                send(reply, {"entries": entries})
                entries = []
    send(reply, {"entries": entries, "done": True})


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, 0o770, exist_ok=True)
    except FileExistsError:
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None


def op_mkdirs(init: Init, msg: dict, reply: socket.socket) -> None:
    _makedirs(_path(msg))
    send(reply, {"ok": True})


def op_rename(init: Init, msg: dict, reply: socket.socket) -> None:
    os.rename(_path(msg, "src"), _path(msg, "dst"))
    send(reply, {"ok": True})


def op_unlink(init: Init, msg: dict, reply: socket.socket) -> None:
    os.unlink(_path(msg))
    send(reply, {"ok": True})


def op_symlink(init: Init, msg: dict, reply: socket.socket) -> None:
    path = _path(msg)
    target = msg["target"]
    if not isinstance(target, str) or "\0" in target:
        raise ValueError("target")
    if msg.get("mkdirs"):
        _makedirs(os.path.dirname(path) or "/")
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)  # adbd replaces an existing link or file
    except FileNotFoundError:
        pass
    os.symlink(target, path)
    send(reply, {"ok": True})


FILE_OPS = {
    "open": op_open,
    "create_temp": op_create_temp,
    "stat": op_stat,
    "list": op_list,
    "mkdirs": op_mkdirs,
    "rename": op_rename,
    "unlink": op_unlink,
    "symlink": op_symlink,
}


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    os.set_inheritable(control.fileno(), False)
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no phone process may ptrace pid 1
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)  # pid 1: the kernel drops them (no handler)
    set_process_name(["init"])
    os.chdir("/")
    Init(control).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
