"""What one emulated phone is: its folders on the host and its settings.

Layout under ``--root DIR``::

    DIR/fs/      the host's view of the phone's files: system/ and vendor/ (written by the
                 emulator at start), data/ (the phone's storage, a mount while it runs)
    DIR/state/   the emulator's own files (adb_keys, settings, faults, thermal state, the
                 /data image, the command log, pid): outside fs/ and never inside the
                 phone's sandbox, so nothing on the phone can read or change them

``state/settings.json`` holds the settings and the fault switches. The running emulator
re-reads the switches when the file changes (``LiveConfig``), so ``qwenchat emulator fault``
and a test's ``config.save()`` apply to the running phone at once.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

LINK_SPEEDS_BPS = {"usb2": 40_000_000, "usb3": 120_000_000, "unlimited": None}
SERIAL_PREFIX = "emulator-qwenchat-"


def new_serial() -> str:
    """A serial of its own for each new emulated phone: two phones on one adb server (or
    one host) must be told apart, as real phones are by their serial numbers. Digits only,
    like the old fixed ``emulator-qwenchat-0001``; 8 random digits: 100 phones share one
    with a chance of about 1 in 20,000."""
    return SERIAL_PREFIX + f"{secrets.randbelow(10**8):08d}"


@dataclass
class Faults:
    """Switches for tests: make the phone fail on purpose (see ``qwenchat.emulator.faults``)."""

    crash_after_tokens: int | None = None  # the simulated genie dies (SIGSEGV) after N tokens
    hang_before_first_token: bool = False
    fail_load: bool = False
    corrupt_bytes: int | None = None  # flip N bytes of the next file pushed (then cleared)
    fail_commands: list[str] = field(default_factory=list)  # /system/bin commands that fail


@dataclass
class EmulatorConfig:
    root: Path
    serial: str = field(default_factory=new_serial)  # kept in settings.json across restarts
    soc: str = "SM8750"
    android_version: str = "15"
    free_mb: int = 65536  # capacity of /data (free space of an empty phone), kernel-enforced
    ram_mb: int = 16384
    link: str = "unlimited"
    time_scale: float = 1.0
    auth: bool = True
    accept_new_keys: bool = False
    drop_after_bytes: int | None = None  # fault: drop each connection after N bytes received
    genie_profile: Path | None = None  # device profile for the simulated genie (JSON)
    jitter: bool = True
    # False: an adbd older than shell protocol v2 (Android < 7): not in the banner's
    # features, and `shell,v2` is an unknown service (one stdout, no exit code, no stdin).
    shell_v2: bool = True
    faults: Faults = field(default_factory=Faults)

    @property
    def fs_root(self) -> Path:
        return self.root / "fs"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def settings_path(self) -> Path:
        return self.state_dir / "settings.json"

    def save(self) -> None:
        """Atomically (write, rename), so a reader never sees half a file."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["root"] = str(self.root)
        data["genie_profile"] = str(self.genie_profile) if self.genie_profile else None
        tmp = self.settings_path.with_name(f".settings.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.settings_path)

    @classmethod
    def load(cls, root: Path) -> EmulatorConfig:
        data = json.loads((Path(root) / "state" / "settings.json").read_text())
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: dict) -> EmulatorConfig:
        data = dict(data)
        data["root"] = Path(data["root"])
        data["genie_profile"] = Path(data["genie_profile"]) if data.get("genie_profile") else None
        known = Faults.__dataclass_fields__
        data["faults"] = Faults(
            **{k: v for k, v in (data.get("faults") or {}).items() if k in known}
        )
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class LiveConfig:
    """The running phone's view of its settings: the fault switches are taken again from
    ``settings.json`` whenever the file changes. Checked on every use (a stat, ~2 us): a
    switch thrown between two packets of a push applies to the next packet."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self.on_faults_changed: list = []  # callables(old Faults, new Faults)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.config.settings_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def refresh(self) -> EmulatorConfig:
        if self._file_stamp() == self._stamp:
            return self.config
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp or stamp is None:
                return self.config
            self._stamp = stamp
            try:
                saved = EmulatorConfig.load(self.config.root)
            except (OSError, ValueError, KeyError, TypeError):
                return self.config
            old = self.config.faults
            self.config.faults = saved.faults
            self.config.drop_after_bytes = saved.drop_after_bytes
        for callback in self.on_faults_changed:
            callback(old, saved.faults)
        return self.config

    def save(self) -> None:
        with self._lock:
            self.config.save()
            self._stamp = self._file_stamp()
