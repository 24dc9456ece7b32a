"""What the real runtime needs from the phone, checked the way it would fail.

Order follows a real launch: the dynamic linker needs libGenie.so before main() runs; at
GenieDialog_create the QNN HTP backend is dlopen()ed through LD_LIBRARY_PATH, the DSP loads
its Skel through ADSP_LIBRARY_PATH (semicolon-separated), then the tokenizer and each context
binary are opened, and a binary built for another Hexagon arch fails with QNN error 5005.
Every failure is a list of log lines (stderr) followed by the program's own message.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

SOC_ARCH = {"SM8550": "v73", "SM8650": "v75", "SM8750": "v79", "SC8380": "v73"}
CTXBIN_MAGIC = b"QWENCHAT-EMU-CTXBIN"  # own copy of qwenchat.emulator.bundle's header tag
VENDOR_LIB = "/vendor/lib64"


class LaunchFailure(Exception):
    """A failure the real binary reports: ``lines`` go to stderr, then exit 1."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[-1] if lines else "")
        self.lines = list(lines)


@dataclass
class Env:
    """The process's view of the phone: paths are the phone's, relative to ``cwd`` (this
    runs inside the phone's sandbox, so the kernel resolves them)."""

    cwd: str

    def host(self, path: str) -> Path:
        return Path(posixpath.join(self.cwd, path))

    def normalize(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, path))

    def is_file(self, path: str) -> bool:
        try:
            return self.host(path).is_file()
        except OSError:
            return False

    def read_text(self, path: str) -> str | None:
        try:
            return self.host(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def search(self, dirs: list[str], name: str) -> tuple[int, str] | None:
        """(index, emulated dir) of the first dir in ``dirs`` holding ``name``."""
        for i, d in enumerate(dirs):
            if d and self.is_file(d.rstrip("/") + "/" + name):
                return i, d
        return None


def split_paths(value: str | None, sep: str) -> list[str]:
    return [p for p in (value or "").split(sep) if p]


def find_libgenie(env: Env, ld_library_path: str | None, prog: str) -> str:
    """The libGenie.so version string, or the Android linker's failure."""
    dirs = split_paths(ld_library_path, ":")
    hit = env.search(dirs, "libGenie.so")
    if hit is None:
        raise LaunchFailure(
            f'CANNOT LINK EXECUTABLE "{prog}": library "libGenie.so" not found: '
            "needed by main executable"
        )
    text = env.read_text(hit[1].rstrip("/") + "/libGenie.so") or ""
    m = re.search(r"libGenie version (\d+\.\d+\.\d+)", text)
    return m.group(1) if m else "1.0.0"


def soc_arch(soc: str) -> str:
    arch = SOC_ARCH.get(soc.upper())
    if arch is None:
        raise LaunchFailure(
            f"[ERROR] QnnDsp <E> Unsupported SoC model {soc} (SIMULATED)",
            "Failed to create the dialog.",
        )
    return arch


def check_backend(
    env: Env, ld_library_path: str | None, adsp_library_path: str | None, arch: str
) -> None:
    dirs = split_paths(ld_library_path, ":")
    htp = env.search(dirs, "libQnnHtp.so")
    if htp is None:
        raise LaunchFailure(
            '[ERROR] "Unable to load backend. dlerror(): dlopen failed: library '
            '"libQnnHtp.so" not found"',
            "Failed to create the dialog.",
        )
    normalized = [env.normalize(d).rstrip("/") for d in dirs]
    if VENDOR_LIB in normalized[: htp[0]]:
        # The phone's own (older) QNN libraries win the lookup and do not match libGenie.
        raise LaunchFailure(
            "[ERROR] QnnHtp <E> Unable to find a valid interface.",
            "[ERROR] Qnn getQnnInterface FAILED!",
            "Failed to create the dialog.",
        )
    n = arch.lstrip("v")
    stub = f"libQnnHtpV{n}Stub.so"
    if env.search(dirs, stub) is None:
        raise LaunchFailure(
            f'[ERROR] QnnDsp <E> dlopen failed: library "{stub}" not found',
            "[ERROR] QnnDsp <E> Failed to load stub library",
            "Failed to create the dialog.",
        )
    skel = f"libQnnHtpV{n}Skel.so"
    if env.search(split_paths(adsp_library_path, ";"), skel) is None:
        raise LaunchFailure(
            "[ERROR] QnnDsp <E> DspTransport.openSession qnn_open failed, 0x80000406, prio 100",
            f"[ERROR] QnnDsp <E> Failed to load skel {skel} from ADSP_LIBRARY_PATH, error: 4000",
            "[ERROR] QnnDsp <E> Transport layer setup failed: 14001",
            "[ERROR] QnnDsp <E> Failed to load default platform info: 14001",
            "Failed to create the dialog.",
        )


def check_file(env: Env, path: str, what: str) -> Path:
    if not env.is_file(path):
        raise LaunchFailure(
            f"[ERROR] Failed to open {what} file: {path} (No such file or directory)",
            "Failed to create the dialog.",
        )
    return env.host(path)


def check_ctx_bins(env: Env, ctx_bins: list[str], arch: str) -> None:
    for index, path in enumerate(ctx_bins):
        host = check_file(env, path, "context binary")
        with open(host, "rb") as f:
            head = f.read(64)
        built_for = None
        if head.startswith(CTXBIN_MAGIC):
            line = head.split(b"\n", 1)[0].decode("ascii", "replace")
            fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
            built_for = fields.get("arch")
        if built_for != arch:
            raise LaunchFailure(
                f"[ERROR] QnnDsp <E> Failed to deserialize binary {path}: built for "
                f"{built_for or 'an unknown target'}, this device's HTP is {arch}",
                "[ERROR] QnnDsp <E> Context create from binary failed for deviceId 0 "
                "coreId 0 pdId 0 err: 5005",
                f"[ERROR] Could not create context from binary for context index = {index} "
                ": err 5005",
                "Failed to create the dialog.",
            )
