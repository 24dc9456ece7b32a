"""What one emulated phone is: its folders on the host and its settings.

Layout under ``--root DIR``::

    DIR/fs/      the phone's "/" (the only thing its shell and sync can see)
    DIR/state/   the emulator's own files (adb_keys, thermal state, settings, pid):
                 outside fs/, so nothing on the phone can read or change them
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

LINK_SPEEDS_BPS = {"usb2": 40_000_000, "usb3": 120_000_000, "unlimited": None}


@dataclass
class Faults:
    """Switches for tests: make the simulated genie-t2t-run fail on purpose."""

    crash_after_tokens: int | None = None
    hang_before_first_token: bool = False
    fail_load: bool = False


@dataclass
class EmulatorConfig:
    root: Path
    serial: str = "emulator-qwenchat-0001"
    soc: str = "SM8750"
    android_version: str = "15"
    free_mb: int = 65536  # free space of /data, enforced by sync and shell writes
    ram_mb: int = 16384
    link: str = "unlimited"
    time_scale: float = 1.0
    auth: bool = True
    accept_new_keys: bool = False
    drop_after_bytes: int | None = None
    genie_profile: Path | None = None  # device profile for the simulated genie (JSON)
    jitter: bool = True
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
        """Written where the simulated genie-t2t-run (a separate process) can read it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["root"] = str(self.root)
        data["genie_profile"] = str(self.genie_profile) if self.genie_profile else None
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.settings_path)

    @classmethod
    def load(cls, root: Path) -> EmulatorConfig:
        data = json.loads((Path(root) / "state" / "settings.json").read_text())
        data["root"] = Path(data["root"])
        data["genie_profile"] = Path(data["genie_profile"]) if data.get("genie_profile") else None
        data["faults"] = Faults(**data.get("faults") or {})
        return cls(**data)
