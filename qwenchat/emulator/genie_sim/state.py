"""Dialog state for --save/--restore (SIMULATED: no real KV cache, a checksum stands in).

Genie's help says "PATH must be an existing path" for --save and "PATH must contain a previous
save state" for --restore: the state is a DIRECTORY the caller creates; Genie writes its files
into it. The sim writes one JSON file there (n_past, the token history, a "kv" checksum over
that history, the config identity); a missing, corrupt or foreign state fails to restore.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from qwenchat.emulator.genie_sim.runtime import LaunchFailure

STATE_FILE = "genie_dialog_state.json"
FORMAT = "qwenchat-emu-genie-dialog-state/1"


@dataclass
class DialogState:
    n_past: int
    tokens: list[int]
    config_identity: str


def kv_checksum(tokens: list[int]) -> str:
    return hashlib.sha256(" ".join(map(str, tokens)).encode()).hexdigest()


def save_state(directory: Path, state: DialogState) -> None:
    if not directory.is_dir():
        raise LaunchFailure(
            f"[ERROR] Save path {directory.name} does not exist or is not a directory",
            "Failed to save.",
        )
    data = {
        "format": FORMAT,
        "simulated": True,
        "n_past": state.n_past,
        "tokens": state.tokens,
        "kv": kv_checksum(state.tokens),
        "config_identity": state.config_identity,
    }
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(directory / STATE_FILE)


def load_state(directory: Path, shown_path: str, config_identity: str) -> DialogState:
    def fail(why: str) -> LaunchFailure:
        return LaunchFailure(
            f"[ERROR] Failed to restore dialog state from {shown_path}: {why}", "Failed to restore."
        )

    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except FileNotFoundError:
        raise fail("no saved state found") from None
    except (OSError, ValueError):
        raise fail("state file is corrupt") from None
    try:
        if data.get("format") != FORMAT:
            raise fail("unknown state format")
        tokens = [int(t) for t in data["tokens"]]
        n_past = int(data["n_past"])
        if data["kv"] != kv_checksum(tokens) or n_past != len(tokens):
            raise fail("KV cache checksum mismatch")
        if data["config_identity"] != config_identity:
            raise fail("state was saved with a different model/context configuration")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise fail("state file is corrupt") from None
    return DialogState(n_past=n_past, tokens=tokens, config_identity=config_identity)
