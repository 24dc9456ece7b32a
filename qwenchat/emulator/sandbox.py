"""The phone's one long-lived sandbox: bubblewrap running the phone's init as pid 1.

Its own user namespace (uid/gid 2000, Android's ``shell``, no capabilities, no nested user
namespaces), pid namespace (the phone's processes see each other and nothing of the host),
network namespace (plus a seccomp filter refusing IP sockets: ``seccomp``), IPC and UTS
namespaces. The root is an empty tmpfs, made read-only once the phone's trees are bound in:
/system and /vendor (``rootfs``, read-only), /data (``storage``, the only writable place, with
/storage/emulated/0 inside it), /proc of its own pid namespace with three files of the
emulator over it, /sys (``sysfiles``, read-only), a minimal /dev, and what the host lends
(``hostlend``, read-only). ``--die-with-parent``: the phone dies with the emulator.

Where the kernel or the machine refuses (bwrap missing, user namespaces disabled), starting
fails with ``SandboxUnavailable``: one line naming the cause. There is no weaker fallback.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator import PhoneStartError, phoneinit
from qwenchat.emulator.hostlend import (
    SIM_PYTHONPATH,
    MissingTool,
    lending,
    python_command,
    tool_path,
)
from qwenchat.emulator.limits import PhoneLimits
from qwenchat.emulator.seccomp import UnsupportedArch, network_filter

log = logging.getLogger("qwenchat.emulator")

SHELL_UID = 2000
START_TIMEOUT_S = 20.0
INIT_SCRIPT = f"{SIM_PYTHONPATH}/qwenchat/emulator/phoneinit.py"
SERVICE_SOCKET = "/dev/socket/qwenchat"
PATH = "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/vendor/bin"


class SandboxUnavailable(PhoneStartError):
    """The sandbox cannot run here; the message is one line with the cause."""


@dataclass(frozen=True)
class Mounts:
    """Host paths the sandbox binds (besides what ``hostlend`` lends)."""

    fs_root: Path  # holds system/ and vendor/
    data: Path  # the phone's /data
    sys_dir: Path
    proc_overlays: dict[str, Path]
    service_socket: Path


def bwrap_args(mounts: Mounts, seccomp_fd: int, control_fd: int) -> list[str]:
    lent = lending()
    args = [
        str(tool_path("bwrap")),
        "--unshare-user", "--uid", str(SHELL_UID), "--gid", str(SHELL_UID),
        "--disable-userns",
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--hostname", "localhost",
        "--cap-drop", "ALL",
        "--die-with-parent", "--as-pid-1",
        "--seccomp", str(seccomp_fd),
        "--ro-bind", str(mounts.fs_root / "system"), "/system",
        "--ro-bind", str(mounts.fs_root / "vendor"), "/vendor",
        # /data last: df of a path under /data names the mount /data, not the sdcard view.
        "--bind", str(mounts.data / "media" / "0"), "/storage/emulated/0",
        "--bind", str(mounts.data), "/data",
        "--symlink", "/storage/emulated/0", "/storage/self/primary",
        "--symlink", "/storage/self/primary", "/sdcard",
        "--symlink", "/system/etc", "/etc",
        "--symlink", "/system/bin", "/bin",
    ]  # fmt: skip
    for item in lent.files:
        args += ["--ro-bind", str(item.source), item.dest]
    for masked in lent.masked:
        args += ["--tmpfs", masked, "--remount-ro", masked]
    args += ["--proc", "/proc"]
    for name, path in mounts.proc_overlays.items():
        args += ["--ro-bind", str(path), f"/proc/{name}"]
    args += [
        "--ro-bind", str(mounts.sys_dir), "/sys",
        "--dev", "/dev",
        "--ro-bind", str(mounts.service_socket), SERVICE_SOCKET,
        "--remount-ro", "/dev",
        "--remount-ro", "/",
        "--chdir", "/",
        "--clearenv", "--setenv", "PATH", PATH,
        "--", *python_command(INIT_SCRIPT), str(control_fd),
    ]  # fmt: skip
    return args


class Sandbox:
    """The running sandbox: ``control`` is the socket to its init."""

    def __init__(self, mounts: Mounts) -> None:
        self.mounts = mounts
        self.proc: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self.init_pid: int | None = None  # as the phone sees it (1)
        self._stderr_thread: threading.Thread | None = None
        self._early_stderr: list[str] = []
        # A test may stop the phone from a thread while the fixture stops it too.
        self._stop_lock = threading.Lock()
        self.limits = PhoneLimits()  # its memory and process limits (limits.py)

    def start(self) -> None:
        try:
            bpf = network_filter()
            lending()
            tool_path("bwrap")
        except (MissingTool, UnsupportedArch) as exc:
            raise SandboxUnavailable(str(exc)) from None
        host_end, phone_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        seccomp_r, seccomp_w = os.pipe()
        try:
            os.set_inheritable(phone_end.fileno(), True)
            os.set_inheritable(seccomp_r, True)
            args = bwrap_args(self.mounts, seccomp_r, phone_end.fileno())
            # The filter is small (< 1 KiB): it fits the pipe before bwrap reads it.
            os.write(seccomp_w, bpf)
            os.close(seccomp_w)
            seccomp_w = -1
            self.limits.create()
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(phone_end.fileno(), seccomp_r),
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                preexec_fn=self.limits.enter if self.limits.enforced else None,  # noqa: PLW1509
            )
        except (OSError, subprocess.SubprocessError) as exc:
            host_end.close()
            self.limits.remove()
            raise SandboxUnavailable(f"cannot start bwrap: {exc}") from None
        finally:
            phone_end.close()
            os.close(seccomp_r)
            if seccomp_w != -1:
                os.close(seccomp_w)
        self.control = host_end
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name="phone-stderr", daemon=True
        )
        self._stderr_thread.start()
        self._wait_ready()

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if self.init_pid is None:
                self._early_stderr.append(line)
            if line:
                log.info("phone: %s", line)

    def _wait_ready(self) -> None:
        assert self.control is not None and self.proc is not None
        self.control.settimeout(START_TIMEOUT_S)
        try:
            msg, fds = phoneinit.recv(self.control)
        except (OSError, ValueError):
            msg, fds = None, []
        for fd in fds:
            os.close(fd)
        self.control.settimeout(None)
        if msg is None or not msg.get("ready"):
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            if self._stderr_thread is not None:
                self._stderr_thread.join(timeout=2)
            self.stop()
            raise _explain(self._early_stderr)
        self.init_pid = int(msg["pid"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Close the init's socket: pid 1 exits and the kernel ends every phone process."""
        with self._stop_lock:
            control, self.control = self.control, None
        if control is not None:
            try:
                control.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            control.close()
        if self.proc is not None:
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.limits.remove()


def _explain(stderr: list[str]) -> SandboxUnavailable:
    """bwrap's complaint as one line, and what to do about it."""
    text = " ".join(line.strip() for line in stderr if line.strip())
    if not text:
        return SandboxUnavailable("the phone's sandbox did not start (bwrap gave no reason)")
    lowered = text.lower()
    if "namespace" in lowered or "uid map" in lowered or "operation not permitted" in lowered:
        return SandboxUnavailable(
            f"the kernel refuses the phone's sandbox (user namespaces): {text}",
            "Allow user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
            "user.max_user_namespaces > 0), or run the emulator where they are allowed.",
        )
    return SandboxUnavailable(f"the phone's sandbox did not start: {text}")
