"""Assembling what goes to the phone: a ``BundlePlan`` of files with their remote names.

Remote names are relative to the phone's work dir (``PhoneLayout.work_dir``) so one plan
can go to any ``--device-dir``. Nothing here talks to a phone.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.assets.discover import (
    ContextBinary,
    check_sizes,
    find_context_binaries,
    find_runtime_files,
)
from qwenchat.assets.qairt_version import (
    binaries_qairt_version,
    mismatch_warning,
    qairt_sdk_version,
)
from qwenchat.assets.validate import (
    check_bundle_model,
    check_config_model,
    check_not_empty,
    check_overrides,
    check_part_count,
    check_readable,
    check_remote_name,
    check_tokenizer,
)
from qwenchat.errors import BundleError, ConfigError
from qwenchat.genie import config as genie_config
from qwenchat.genie.config import parse_genie_config
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import HashCache
from qwenchat.soc import soc_info

if TYPE_CHECKING:
    from qwenchat.genie.config import GenieConfig
    from qwenchat.models.spec import ModelSpec

OVERRIDE_KEYS = ("context_size", "max_num_tokens", "temp", "top_k", "top_p", "seed")

_REF = PhoneLayout("/w")


def _rel(remote_dir: str, name: str) -> str:
    return posixpath.join(posixpath.relpath(remote_dir, _REF.work_dir), name)


BUNDLE_SUBDIR = posixpath.relpath(_REF.bundle_dir, _REF.work_dir)
BIN_SUBDIR = posixpath.relpath(_REF.bin_dir, _REF.work_dir)
LIB_SUBDIR = posixpath.relpath(_REF.lib_dir, _REF.work_dir)
SKEL_SUBDIR = posixpath.relpath(_REF.skel_dir, _REF.work_dir)


@dataclass(frozen=True)
class BundleFile:
    """One file for the phone: from disk (``local``) or generated (``data``)."""

    local: Path | None
    data: bytes | None
    remote: str  # relative to the work dir, e.g. "bundle/tokenizer.json"
    mode: int
    size: int


@dataclass
class BundlePlan:
    files: list[BundleFile]
    soc: str
    arch: str  # Hexagon arch of the runtime files, e.g. "v79"
    ctx_bins: list[str] = field(default_factory=list)
    model: str | None = None  # ModelSpec name the bundle is assembled for
    qairt_version: str | None = None  # the QAIRT runtime pushed (its sdk.yaml)
    binaries_qairt_version: str | None = None  # the QAIRT the ctx-bins were compiled with
    warnings: list[str] = field(default_factory=list)  # shown before pushing, e.g. a mismatch

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, remote: str) -> BundleFile:
        for f in self.files:
            if f.remote == remote:
                return f
        raise KeyError(remote)


def _local(path: Path, remote: str, mode: int = 0o644) -> BundleFile:
    return BundleFile(local=path, data=None, remote=remote, mode=mode, size=path.stat().st_size)


def _generated(text: str, remote: str) -> BundleFile:
    data = text.encode("utf-8")
    return BundleFile(local=None, data=data, remote=remote, mode=0o644, size=len(data))


def _bins_from_bundle_config(bundle_dir: Path, names: list[str]) -> list[ContextBinary]:
    bins = []
    for i, name in enumerate(names, start=1):
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(
                f"context binary {name} named in {bundle_dir / 'genie_config.json'} is missing",
                "Put the file next to genie_config.json, or remove that genie_config.json.",
            )
        bins.append(ContextBinary(path, i, len(names), path.stat().st_size))
    check_sizes(bundle_dir, bins)
    return bins


def _soc_arch(soc: str) -> str:

    return str(soc_info(soc).dsp_arch)


def _render(obj: Any) -> str:
    if hasattr(obj, "render"):
        return obj.render()
    return obj.model_dump_json(indent=2, by_alias=True, exclude_none=True)


def model_genie_config(spec: ModelSpec) -> GenieConfig:
    """The Genie config qwenchat ships for ``spec`` (genie_configs/<spec.genie_config>)."""
    return genie_config.load_genie_config(genie_config.genie_configs_dir() / spec.genie_config)


def plan_bundle(
    bundle_dir: Path,
    qairt_dir: Path | None,
    soc: str,
    tokenizer: Path | None = None,
    *,
    model: ModelSpec | str | None = None,
    cache: HashCache | None = None,
    **overrides: Any,
) -> BundlePlan:
    """Everything the phone needs for ``soc``, validated, with both Genie configs rendered.

    ``model``: the ModelSpec (or its name; None: the default model) the bundle must be.
    ``cache``: where facts about big host files (the tokenizer's) are remembered; None opens
    the default hash cache. ``overrides``: context_size, max_num_tokens, temp, top_k, top_p,
    seed (None = keep).
    """
    from qwenchat.models.registry import get_model
    from qwenchat.models.spec import ModelSpec as _Spec

    unknown = set(overrides) - set(OVERRIDE_KEYS)
    if unknown:
        raise TypeError(f"unknown config overrides: {', '.join(sorted(unknown))}")
    spec = model if isinstance(model, _Spec) else get_model(model)
    bundle_dir = Path(bundle_dir)
    arch = _soc_arch(soc)  # ConfigError for an unknown SoC, before any file is looked at
    reference = model_genie_config(spec)

    if not bundle_dir.is_dir():
        raise BundleError(
            f"bundle folder not found: {bundle_dir}",
            "Pass --bundle DIR: the unzipped AI Hub export holding the context binaries (*.bin).",
        )
    check_bundle_model(bundle_dir, spec)
    own_config = bundle_dir / "genie_config.json"
    if own_config.is_file():
        # The export brings its own config: respect its ctx-bins, order and settings.
        config = genie_config.load_genie_config(own_config)
        check_config_model(config, reference, spec, str(own_config))
        bins = _bins_from_bundle_config(bundle_dir, list(config.ctx_bins))
    else:
        bins = find_context_binaries(bundle_dir)
        check_part_count(bundle_dir, [b.path.name for b in bins], reference, spec)
        config = reference
    check_overrides(overrides, config.context_size, spec.display_name)
    config = config.with_overrides(**{k: v for k, v in overrides.items() if v is not None})
    bin_names = [b.path.name for b in bins]
    config = _with_ctx_bins(config, bin_names)

    tok_name = posixpath.basename(str(getattr(config, "tokenizer_path", "tokenizer.json")))
    tok_path = tokenizer if tokenizer is not None else bundle_dir / "tokenizer.json"
    tok_path = Path(tok_path)
    if not tok_path.is_file():
        where = f"{tok_path}" if tokenizer is not None else f"{bundle_dir}"
        raise BundleError(
            f"no tokenizer.json: {where}"
            if tokenizer is not None
            else f"no tokenizer.json in {where}",
            f"Pass --tokenizer FILE ({spec.display_name}'s tokenizer.json).",
        )
    own_cache = cache is None
    cache = cache if cache is not None else HashCache()
    try:
        check_tokenizer(tok_path, spec, cache)
    finally:
        if own_cache:
            cache.close()

    runtime = find_runtime_files(qairt_dir, arch)
    ext_config = genie_config.htp_ext_config_for_soc(soc)

    files = [_local(b.path, _rel(_REF.bundle_dir, b.path.name)) for b in bins]
    files.append(_local(tok_path, _rel(_REF.bundle_dir, tok_name)))
    files.append(_generated(_render(config), _rel(_REF.bundle_dir, "genie_config.json")))
    files.append(
        _generated(_render(ext_config), _rel(_REF.bundle_dir, "htp_backend_ext_config.json"))
    )
    files.append(_local(runtime.genie_binary, _rel(_REF.bin_dir, "genie-t2t-run"), 0o755))
    if runtime.genie_app is not None:
        files.append(_local(runtime.genie_app, _rel(_REF.bin_dir, "genie-app"), 0o755))
    files += [_local(p, _rel(_REF.lib_dir, p.name)) for p in runtime.libs]
    files.append(_local(runtime.skel, _rel(_REF.skel_dir, runtime.skel.name)))
    _check_files(files)

    runtime_version, runtime_where = qairt_sdk_version(qairt_dir)
    binaries_version, binaries_where = binaries_qairt_version(bundle_dir)
    warning = mismatch_warning(runtime_version, runtime_where, binaries_version, binaries_where)
    return BundlePlan(
        files=files,
        soc=soc_info(soc).soc,
        arch=arch,
        ctx_bins=bin_names,
        model=spec.name,
        qairt_version=runtime_version,
        binaries_qairt_version=binaries_version,
        warnings=[warning] if warning else [],
    )


def _check_files(files: list[BundleFile]) -> None:
    """Every file readable, nothing empty, every name plain; what we render parses back."""
    seen: set[str] = set()
    for f in files:
        check_remote_name(f.remote, f.local)
        if f.remote in seen:
            raise BundleError(
                f"two files would land on the phone as {f.remote}",
                "Keep one file of each name in the bundle folder.",
            )
        seen.add(f.remote)
        if f.local is not None:
            what = "context binary" if f.remote.endswith(".bin") else "file"
            check_not_empty(f.local, f.size, what)
            check_readable(f.local, what)
    # Rendered here, so a bug in rendering can never put a broken config on the phone.
    def rendered(name: str) -> str:
        data = next(f for f in files if f.remote.endswith(name)).data
        assert data is not None  # the configs are rendered in memory, never read from disk
        return data.decode()

    genie_config.parse_genie_config(
        rendered("/genie_config.json"),
        source="genie_config.json (rendered)",
    )
    genie_config.parse_htp_ext_config(
        rendered("/htp_backend_ext_config.json"),
        source="htp_backend_ext_config.json (rendered)",
    )


def _with_ctx_bins(config: Any, names: list[str]) -> Any:
    """The config with ``ctx-bins`` set to the binaries found, validated again."""
    import json


    data = config.to_json_dict()
    try:
        data["dialog"]["engine"]["model"]["binary"]["ctx-bins"] = names
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            "genie_config.json has no dialog.engine.model.binary section for ctx-bins",
            'qwenchat runs context-binary models (model type "binary").',
        ) from exc
    return parse_genie_config(json.dumps(data), source="genie_config.json (ctx-bins found)")
