"""One emulated phone: its sandboxed filesystem, process table, properties and virtual files,
and the shell sessions the ADB server opens on it. Everything here is SIMULATED.

The ADB server (``qwenchat.emulator.adbd``) runs ``ShellSession.run()`` in a thread per
``shell:``/``exec:`` stream and uses ``phone.sandbox`` / ``phone.free_bytes()`` for ``sync:``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from qwenchat.emulator.config import EmulatorConfig
from qwenchat.emulator.fs import Sandbox
from qwenchat.emulator.procs import ProcessTable
from qwenchat.emulator.props import build_props
from qwenchat.emulator.shell.interpreter import (
    DEFAULT_ENV,
    READ_ONLY_ROOTS,
    SH,
    WRITABLE_ROOTS,
    Cancel,
    ExitShell,
    Interp,
)
from qwenchat.emulator.shell.parser import ParseError, parse
from qwenchat.emulator.shell.streams import CallbackWriter, Hangup, Pipe
from qwenchat.emulator.thermal import ZONES, ThermalModel

MIB = 1024 * 1024
SKELETON_DIRS = {
    "data/local/tmp": 0o771,
    "sdcard": 0o771,
    "storage": 0o755,
    "system/bin": 0o755,
    "vendor/lib64": 0o755,
    "proc": 0o555,
    "dev": 0o755,
    "sys/class/power_supply/battery": 0o755,
    "sys/class/power_supply/usb": 0o755,
}
# Battery and power state; `state/battery.json` (outside the phone's fs) may override them.
DEFAULT_BATTERY = {"level": 87, "status": "Charging", "usb": True, "ac": False, "power_save": False}


def _thermal_files() -> dict[str, int]:
    return {f"sys/class/thermal/thermal_zone{i}": i for i in range(len(ZONES))}


class Phone:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._create_skeleton()
        self.sandbox = Sandbox(config.fs_root)
        self.processes = ProcessTable()
        self.thermal = ThermalModel(config.state_dir, config.time_scale)
        self._props = build_props(config)
        self._usage_lock = threading.Lock()
        self._used: int | None = None

    # ---- filesystem ---------------------------------------------------------------------

    def _create_skeleton(self) -> None:
        root = self.config.fs_root
        root.mkdir(parents=True, exist_ok=True)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        for rel, mode in SKELETON_DIRS.items():
            path = root / rel
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode if not rel.startswith(("proc", "sys")) else 0o755)
        for rel in _thermal_files():
            (root / rel).mkdir(parents=True, exist_ok=True)
        # Placeholders so `ls` and globs see the virtual files; reads are computed.
        for emu in self._virtual_paths():
            path = root / emu.lstrip("/")
            if not path.exists():
                path.write_bytes(b"")
                os.chmod(path, 0o444)
        null = root / "dev/null"
        if not null.exists():
            null.write_bytes(b"")
            os.chmod(null, 0o666)

    def _virtual_paths(self) -> list[str]:
        paths = ["/proc/meminfo", "/proc/cpuinfo", "/proc/version"]
        for rel in _thermal_files():
            paths += [f"/{rel}/type", f"/{rel}/temp"]
        for name in ("capacity", "status", "temp", "present"):
            paths.append(f"/sys/class/power_supply/battery/{name}")
        paths.append("/sys/class/power_supply/usb/online")
        return paths

    def is_virtual(self, emulated_path: str) -> bool:
        return emulated_path in self._virtual_set

    @property
    def _virtual_set(self) -> frozenset[str]:
        cached = getattr(self, "_virtual_cache", None)
        if cached is None:
            cached = self._virtual_cache = frozenset(self._virtual_paths())
        return cached

    def writable(self, emulated_path: str) -> bool:
        """Whether the phone's `shell` user may write there (for sync: SEND too)."""
        p = emulated_path
        if any(p == r or p.startswith(r + "/") for r in READ_ONLY_ROOTS) or self.is_virtual(p):
            return False
        return any(p == r or p.startswith(r + "/") for r in WRITABLE_ROOTS)

    def free_bytes(self) -> int:
        capacity = self.config.free_mb * MIB
        with self._usage_lock:
            if self._used is None:
                self._used = self._scan_usage()
            return max(0, capacity - self._used)

    def note_written(self, delta_bytes: int) -> None:
        with self._usage_lock:
            if self._used is None:
                self._used = self._scan_usage()
            self._used = max(0, self._used + delta_bytes)

    def rescan_usage(self) -> None:
        """Forget the cached usage (after something wrote behind the phone's back)."""
        with self._usage_lock:
            self._used = None

    def _scan_usage(self) -> int:
        # Apparent sizes, not blocks: the same figure on every host filesystem.
        used = 0
        for dirpath, _dirs, files in os.walk(self.sandbox.fs_root):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    used += st.st_size
        return used

    # ---- properties and virtual files -----------------------------------------------------

    def props(self) -> dict[str, str]:
        return dict(self._props)

    def battery(self) -> dict:
        state = dict(DEFAULT_BATTERY)
        try:
            state.update(json.loads((self.config.state_dir / "battery.json").read_text()))
        except (OSError, ValueError):
            pass
        return state

    def virtual_file(self, emulated_path: str) -> bytes | None:
        """Content of a computed file, or None if the path is not virtual. Reading the
        unreadable thermal zone raises OSError(EINVAL), as on real phones."""
        if emulated_path not in self._virtual_set:
            return None
        path = emulated_path
        if path == "/proc/meminfo":
            total_kb = self.config.ram_mb * 1024
            avail_kb = int(total_kb * 0.42)
            lines = [
                ("MemTotal", total_kb),
                ("MemFree", int(total_kb * 0.08)),
                ("MemAvailable", avail_kb),
                ("Buffers", 6_144),
                ("Cached", int(total_kb * 0.30)),
                ("SwapTotal", 8_388_604),
                ("SwapFree", 6_291_452),
            ]
            return "".join(f"{k + ':':<16}{v:>8} kB\n" for k, v in lines).encode()
        if path == "/proc/cpuinfo":
            return (
                "".join(
                    f"processor\t: {i}\nBogoMIPS\t: 38.40\nCPU implementer\t: 0x51\n\n"
                    for i in range(8)
                ).encode()
                + f"Hardware\t: Qualcomm Technologies, Inc {self.config.soc} (SIMULATED)\n".encode()
            )
        if path == "/proc/version":
            return b"Linux version 6.6.30-android15-qwenchat-SIMULATED (qwenchat emulator)\n"
        if path.startswith("/sys/class/thermal/thermal_zone"):
            zone_dir, _, leaf = path.rpartition("/")
            index = int(zone_dir.rsplit("thermal_zone", 1)[1])
            if leaf == "type":
                return f"{ZONES[index].type}\n".encode()
            temp = self.thermal.temperatures_c()[index]
            if temp is None:
                raise OSError(22, os.strerror(22), path)
            return f"{round(temp * 1000)}\n".encode()
        battery = self.battery()
        if path == "/sys/class/power_supply/battery/capacity":
            return f"{int(battery['level'])}\n".encode()
        if path == "/sys/class/power_supply/battery/status":
            return f"{battery['status']}\n".encode()
        if path == "/sys/class/power_supply/battery/present":
            return b"1\n"
        if path == "/sys/class/power_supply/battery/temp":
            return f"{round(self.battery_temp_c() * 10)}\n".encode()
        if path == "/sys/class/power_supply/usb/online":
            return b"1\n" if battery["usb"] else b"0\n"
        return None

    def battery_temp_c(self) -> float:
        names = [z.type for z in ZONES]
        temps = self.thermal.temperatures_c()
        value = temps[names.index("battery")] if "battery" in names else None
        return value if value is not None else 30.0

    def shutdown(self, *, kill_children: bool = True) -> None:
        """Hang up every shell (and kill launched genies unless told not to)."""
        self.processes.shutdown(kill_children=kill_children)


class _StdinReader:
    """The session's stdin: line reads for the interactive loop, with what is left over
    served first to any command that reads stdin."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.buf = bytearray()

    def readline(self) -> bytes | None:
        while b"\n" not in self.buf:
            chunk = self.pipe.read(4096)
            if not chunk:
                if not self.buf:
                    return None
                line, self.buf = bytes(self.buf), bytearray()
                return line
            self.buf += chunk
        idx = self.buf.index(b"\n") + 1
        line = bytes(self.buf[:idx])
        del self.buf[:idx]
        return line

    def read(self, n: int = -1) -> bytes:
        if self.buf:
            if n < 0:
                data = bytes(self.buf) + self.pipe.read(-1)
                self.buf.clear()
                return data
            data = bytes(self.buf[:n])
            del self.buf[:n]
            return data
        return self.pipe.read(n)

    def close(self) -> None:
        pass


class ShellSession:
    """One `sh` on the phone: `command` runs as `sh -c`, None reads command lines from stdin."""

    def __init__(
        self,
        phone: Phone,
        command: str | None,
        *,
        stdout: Callable[[bytes], None],
        stderr: Callable[[bytes], None],
        env: dict[str, str] | None = None,
    ) -> None:
        self.phone = phone
        self.command = command
        self.cancel = Cancel()
        self._lock = threading.Lock()  # one callback at a time: output never interleaves mid-chunk
        self._stdin_pipe = Pipe(capacity=1024 * 1024, cancel=self.cancel)
        self._stdin = _StdinReader(self._stdin_pipe)
        self._stdout = CallbackWriter(stdout, self._lock, self.cancel)
        self._stderr = CallbackWriter(stderr, self._lock, self.cancel)
        self._env = dict(env or {})
        self.pid: int | None = None
        self.exit_code: int | None = None

    def run(self) -> int:
        args = [SH] if self.command is None else [SH, "-c", self.command]
        self.pid = self.phone.processes.add_shell(args, self.cancel.set)
        variables = {**DEFAULT_ENV, **self._env}
        interp = Interp(
            self.phone,
            pid=self.pid,
            cancel=self.cancel,
            variables=variables,
            exported=set(variables),
            cwd="/",
        )
        interp.stderr_for_subst = self._stderr
        io = [self._stdin, self._stdout, self._stderr]
        try:
            if self.command is not None:
                status = interp.run_source(self.command, io)
            else:
                status = self._interactive(interp, io)
        except Hangup as exc:
            status = 128 + (exc.sig or signal.SIGHUP)
        except ExitShell as exc:
            status = exc.code
        finally:
            # The stream ends with the shell; background work keeps running but its output
            # is dropped (launched genies live on, as children of a hung-up shell do).
            self._stdout.detached = True
            self._stderr.detached = True
            self._stdin_pipe.close_read()
            self.phone.processes.remove(self.pid)
        if self.cancel.is_set() and status < 128:
            status = 128 + (self.cancel.sig or signal.SIGHUP)
        self.exit_code = status & 0xFF
        return self.exit_code

    def _interactive(self, interp: Interp, io: list) -> int:
        pending = ""
        status = 0
        while True:
            line = self._stdin.readline()
            if line is None:
                if pending.strip():
                    status = interp.run_source(pending, io, catch_exit=False)
                return status
            pending += line.decode("utf-8", errors="surrogateescape")
            try:
                parse(pending)
            except ParseError as exc:
                if exc.incomplete:
                    continue
            try:
                status = interp.run_source(pending, io, catch_exit=False)
            except ExitShell as exc:
                return exc.code
            finally:
                pending = ""

    def feed_stdin(self, data: bytes) -> None:
        try:
            self._stdin_pipe.write(data)
        except (BrokenPipeError, Hangup):
            pass  # the shell has ended or hung up: input has nowhere to go

    def close_stdin(self) -> None:
        self._stdin_pipe.close_write()

    def hangup(self) -> None:
        """The client closed the stream: SIGHUP to the shell. Launched children live on."""
        self.cancel.set(signal.SIGHUP)


__all__ = ["Phone", "ShellSession", "Path"]
