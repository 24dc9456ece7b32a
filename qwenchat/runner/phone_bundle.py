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


_MARK = "__qwenchat_bundle_text__:"


class PhoneBundle:
    def __init__(self, device: Device, layout: PhoneLayout | None = None) -> None:
        self.device = device
        self.layout = layout or PhoneLayout()

    @cached_property
    def _texts(self) -> dict[str, bytes | None]:
        """The manifest and genie_config.json, read in one round trip (None: absent)."""
        paths = {"manifest": self.layout.manifest_path, "config": self.layout.config_path}
        command = "; ".join(
            f"if [ -f {quote(path)} ]; then echo {_MARK}{name}; cat {quote(path)}; echo; fi"
            for name, path in paths.items()
        )
        result = self.device.shell(f"{command}; echo {_MARK}end", timeout=30)
        out = result.stdout
        if not out.rstrip().endswith(f"{_MARK}end".encode()):
            raise BundleError(
                "the phone did not list its bundle's manifest and config "
                f"(exit {result.exit_code}: {result.error_text.strip()[:200]})"
            )
        texts: dict[str, bytes | None] = dict.fromkeys(paths)
        parts = out.split(_MARK.encode())
        for part in parts[1:]:
            name, _, body = part.partition(b"\n")
            if name.decode(errors="replace") in texts:
                # The file, then the newline of the bare echo after it.
                texts[name.decode()] = body[:-1] if body.endswith(b"\n") else body
        return texts

    @cached_property
    def config(self) -> GenieConfig:
        """genie_config.json on the phone (BundleError with a hint when nothing was pushed)."""

        path = self.layout.config_path
        raw = self._texts["config"]
        if raw is None:
            raise BundleError(
                f"no Genie bundle on the phone ({path} is missing)",
                hint="Push it first: `qwenchat push-assets` (or --device-dir for another work dir).",
            )
        return parse_genie_config(raw.decode("utf-8"), source=f"phone:{path}")

    @cached_property
    def manifest_bytes(self) -> bytes | None:
        return self._texts["manifest"]

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

    def _manifest_digest(self, remote: str) -> str | None:
        return _listed_digest(self.manifest_bytes, self.layout.work_dir, remote)

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
        # The manifest vouches for every file push-assets verified (and is rewritten by any
        # push, from any computer): its digest of the tokenizer spares hashing it again.
        listed = self._manifest_digest(remote)
        if listed is not None and (folder / f"{listed}.json").exists():
            return folder / f"{listed}.json"
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


def _listed_digest(manifest_raw: bytes | None, work_dir: str, remote: str) -> str | None:
    """The manifest's SHA-256 of ``remote`` (a path on the phone); None when not listed."""
    if manifest_raw is None:
        return None
    from qwenchat.manifest import BundleManifest

    try:
        manifest = BundleManifest.from_json(manifest_raw)
    except BundleError:
        return None
    entry = manifest.files.get(posixpath.relpath(posixpath.normpath(remote), work_dir))
    digest = entry.sha256.lower() if entry is not None else ""
    return digest if len(digest) == 64 else None


def _absolute(base: str, path: str) -> str:
    return path if path.startswith("/") else posixpath.join(base, path)
