"""The Genie bundle as pushed to the phone: its config, tokenizer and manifest, read once.

Chat, bench and doctor all start here: what the phone holds is the truth (a config edited by
push-assets flags, a tokenizer of another model), never a copy on the host.
"""

from __future__ import annotations

import hashlib
import posixpath
import uuid
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.errors import BundleError
from qwenchat.genie.config import parse_genie_config
from qwenchat.layout import PhoneLayout
from qwenchat.models.registry import get_model
from qwenchat.paths import cache_dir
from qwenchat.shellwords import quote

if TYPE_CHECKING:
    from qwenchat.device.base import Device
    from qwenchat.genie.config import GenieConfig
    from qwenchat.models.spec import ModelSpec


class PhoneBundle:
    def __init__(self, device: Device, layout: PhoneLayout | None = None) -> None:
        self.device = device
        self.layout = layout or PhoneLayout()

    @cached_property
    def config(self) -> GenieConfig:
        """genie_config.json on the phone (BundleError with a hint when nothing was pushed)."""

        path = self.layout.config_path
        if self.device.stat(path) is None:
            raise BundleError(
                f"no Genie bundle on the phone ({path} is missing)",
                hint="Push it first: `qwenchat push-assets` (or --device-dir for another work dir).",
            )
        text = self.device.pull_bytes(path).decode("utf-8")
        return parse_genie_config(text, source=f"phone:{path}")

    @cached_property
    def manifest_bytes(self) -> bytes | None:
        path = self.layout.manifest_path
        return self.device.pull_bytes(path) if self.device.stat(path) is not None else None

    @cached_property
    def model(self) -> ModelSpec:
        """The model the phone's bundle was pushed for (its manifest says; a manifest from
        before models were named means the default model, the only one there was)."""
        from qwenchat.manifest import BundleManifest

        raw = self.manifest_bytes
        name = BundleManifest.from_json(raw).model if raw is not None else None
        return get_model(name)

    def require_model(self, wanted: ModelSpec | None) -> ModelSpec:
        """The phone's model; BundleError naming both when ``wanted`` is another one."""
        held = self.model
        if wanted is not None and wanted.name != held.name:
            raise BundleError(
                f"the phone holds {held.display_name}, not {wanted.display_name}",
                hint=f"Push it first: `qwenchat push-assets --model {wanted.name}`, "
                f"or drop --model to use {held.name}.",
            )
        return held

    def require_binary(self) -> None:
        if self.device.stat(self.layout.genie_binary) is None:
            raise BundleError(
                f"no genie-t2t-run on the phone ({self.layout.genie_binary} is missing)",
                hint="Push the bundle with the QAIRT runtime: `qwenchat push-assets`.",
            )

    def tokenizer_file(self) -> Path:
        """The phone's tokenizer.json on the host, to count tokens before sending.

        Cached by content hash: ``sha256sum`` on the phone, pulled only when the host has no
        copy with that hash (or the phone cannot hash).
        """

        remote = _absolute(self.layout.bundle_dir, self.config.tokenizer_path)
        folder = cache_dir() / "phone-tokenizers"
        folder.mkdir(parents=True, exist_ok=True)
        result = self.device.shell(f"sha256sum {quote(remote)}", timeout=60)
        words = result.text.split()
        digest = words[0] if result.ok and words and len(words[0]) == 64 else None
        if digest is not None and (folder / f"{digest}.json").exists():
            return folder / f"{digest}.json"
        if self.device.stat(remote) is None:
            raise BundleError(
                f"no tokenizer on the phone ({remote} is missing)",
                hint="Push the bundle again: `qwenchat push-assets`.",
            )
        data = self.device.pull_bytes(remote)
        digest = hashlib.sha256(data).hexdigest()
        path = folder / f"{digest}.json"
        if not path.exists():
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path


def _absolute(base: str, path: str) -> str:
    return path if path.startswith("/") else posixpath.join(base, path)
