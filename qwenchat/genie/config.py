"""genie_config.json and htp_backend_ext_config.json as typed models.

The models name the keys qwenchat reads or writes; every other key is kept as it came
(``extra="allow"``), because each QAIRT release adds keys and a round trip must not drop
them. Hyphenated JSON keys are field aliases; ``render()`` writes them back by alias and
only the keys that were present (``exclude_unset``), so we never invent keys Genie may reject.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qwenchat.errors import ConfigError
from qwenchat.soc import soc_info

_MODEL_CONFIG = ConfigDict(populate_by_name=True, extra="allow")


class _GenieModel(BaseModel):
    model_config = _MODEL_CONFIG


# ---------------------------------------------------------------------------- genie_config


class ContextConfig(_GenieModel):
    version: int
    size: int = Field(gt=0)
    n_vocab: int = Field(alias="n-vocab", gt=0)
    # -1 tells Genie not to add a BOS token: our chat template already wrote everything.
    bos_token: int = Field(alias="bos-token")
    eos_token: int | list[int] = Field(alias="eos-token")


class SamplerConfig(_GenieModel):
    version: int
    seed: int | None = None
    temp: int | float | None = Field(default=None, ge=0)
    top_k: int | None = Field(default=None, alias="top-k", ge=0)
    top_p: int | float | None = Field(default=None, alias="top-p", ge=0, le=1)


class TokenizerConfig(_GenieModel):
    version: int
    path: str


class QnnHtpConfig(_GenieModel):
    # Required: the keys Genie's QnnHtp backend refuses to start without (declared in the
    # tutorial file's order, so a render keeps the familiar layout).
    version: int
    use_mmap: bool = Field(alias="use-mmap")
    spill_fill_bufsize: int = Field(alias="spill-fill-bufsize")
    mmap_budget: int = Field(alias="mmap-budget")
    poll: bool
    # Optional for new SDKs, but older ones reject a config without pos-id-dim.
    pos_id_dim: int | None = Field(default=None, alias="pos-id-dim")
    cpu_mask: str = Field(alias="cpu-mask")
    kv_dim: int | None = Field(default=None, alias="kv-dim")
    rope_theta: int | float | None = Field(default=None, alias="rope-theta")
    allow_async_init: bool | None = Field(default=None, alias="allow-async-init")


class BackendConfig(_GenieModel):
    version: int
    type: str
    qnn_htp: QnnHtpConfig | None = Field(default=None, alias="QnnHtp")
    extensions: str | None = None

    @model_validator(mode="after")
    def _htp_needs_its_section(self) -> BackendConfig:
        if self.type == "QnnHtp" and self.qnn_htp is None:
            raise ValueError('backend type "QnnHtp" needs a "QnnHtp" section')
        return self


class BinaryConfig(_GenieModel):
    version: int
    ctx_bins: list[str] = Field(alias="ctx-bins", min_length=1)


class ModelConfig(_GenieModel):
    version: int
    type: str
    binary: BinaryConfig | None = None
    # Llama 3.x rope scaling lives here; kept as raw JSON (we only pass it through).
    positional_encoding: dict[str, Any] | None = Field(default=None, alias="positional-encoding")

    @model_validator(mode="after")
    def _binary_needs_its_section(self) -> ModelConfig:
        if self.type == "binary" and self.binary is None:
            raise ValueError('model type "binary" needs a "binary" section with "ctx-bins"')
        return self


class EngineConfig(_GenieModel):
    version: int
    n_threads: int = Field(alias="n-threads", gt=0)
    backend: BackendConfig
    model: ModelConfig


class DialogConfig(_GenieModel):
    version: int
    type: str
    max_num_tokens: int | None = Field(default=None, alias="max-num-tokens", gt=0)
    stop_sequence: list[str] | None = Field(default=None, alias="stop-sequence")
    context: ContextConfig
    sampler: SamplerConfig
    tokenizer: TokenizerConfig
    engine: EngineConfig


class GenieConfig(_GenieModel):
    dialog: DialogConfig

    def to_json_dict(self) -> dict[str, Any]:
        """The config as Genie reads it: original hyphenated keys, only keys that were set."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def render(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2, ensure_ascii=False) + "\n"

    @property
    def ctx_bins(self) -> list[str]:
        binary = self.dialog.engine.model.binary
        if binary is None:
            raise ConfigError(
                "genie_config.json: dialog.engine.model has no binary.ctx-bins",
                hint="qwenchat runs context-binary models (model type \"binary\").",
            )
        return list(binary.ctx_bins)

    @property
    def context_size(self) -> int:
        return self.dialog.context.size

    @property
    def eos_tokens(self) -> list[int]:
        eos = self.dialog.context.eos_token
        return list(eos) if isinstance(eos, list) else [eos]

    @property
    def bos_token(self) -> int:
        return self.dialog.context.bos_token

    @property
    def max_num_tokens(self) -> int | None:
        return self.dialog.max_num_tokens

    @property
    def stop_sequence(self) -> list[str]:
        return list(self.dialog.stop_sequence or [])

    @property
    def tokenizer_path(self) -> str:
        return self.dialog.tokenizer.path

    def with_overrides(
        self,
        context_size: int | None = None,
        max_num_tokens: int | None = None,
        temp: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> GenieConfig:
        """A modified copy; ``None`` leaves a value as it is.

        Goes through the JSON form and validates again, so an override is range-checked
        like a value read from a file and shows up in ``render()``.
        """
        data = self.to_json_dict()
        dialog = data["dialog"]
        if context_size is not None:
            dialog["context"]["size"] = context_size
        if max_num_tokens is not None:
            dialog["max-num-tokens"] = max_num_tokens
        sampler = dialog["sampler"]
        for key, value in (("temp", temp), ("top-k", top_k), ("top-p", top_p), ("seed", seed)):
            if value is not None:
                sampler[key] = value
        return parse_genie_config(json.dumps(data), source="overrides")


def _describe_validation_error(source: str, err: ValidationError) -> str:
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = f"{source}: {loc}: {first['msg']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            hint="Fix the JSON syntax (a trailing comma or a missing quote is the usual cause).",
        ) from None


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def parse_genie_config(text: str, source: str = "genie_config.json") -> GenieConfig:
    """Validate genie_config.json text; ``source`` names it in error messages."""
    data = _parse_json(text, source)
    try:
        return GenieConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            _describe_validation_error(source, exc),
            hint="Compare it with the model's file in genie_configs/ (see genie_configs/README.md).",
        ) from None


def load_genie_config(path: Path) -> GenieConfig:
    return parse_genie_config(_read(path), source=str(path))


# ------------------------------------------------------------ htp_backend_ext_config.json


class HtpCoreConfig(_GenieModel):
    core_id: int
    perf_profile: str
    rpc_control_latency: int | None = None


class HtpDeviceConfig(_GenieModel):
    soc_model: int
    dsp_arch: str
    cores: list[HtpCoreConfig] = Field(min_length=1)


class HtpMemoryConfig(_GenieModel):
    mem_type: str | None = None


class HtpContextConfig(_GenieModel):
    weight_sharing_enabled: bool | None = None


class HtpBackendExtConfig(_GenieModel):
    devices: list[HtpDeviceConfig] = Field(min_length=1)
    memory: HtpMemoryConfig | None = None
    context: HtpContextConfig | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def render(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2) + "\n"

    @property
    def soc_model(self) -> int:
        return self.devices[0].soc_model

    @property
    def dsp_arch(self) -> str:
        return self.devices[0].dsp_arch


def parse_htp_ext_config(
    text: str, source: str = "htp_backend_ext_config.json"
) -> HtpBackendExtConfig:
    data = _parse_json(text, source)
    try:
        return HtpBackendExtConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(source, exc)) from None


def load_htp_ext_config(path: Path) -> HtpBackendExtConfig:
    return parse_htp_ext_config(_read(path), source=str(path))


# --------------------------------------------------------------------- shipped configs

_REPO_CONFIGS = Path(__file__).resolve().parent.parent.parent / "genie_configs"


def genie_configs_dir() -> Path:
    """The repo's genie_configs/ in a checkout, else the copy shipped as package data."""
    if _REPO_CONFIGS.is_dir() and (_REPO_CONFIGS.parent / "pyproject.toml").is_file():
        return _REPO_CONFIGS
    shipped = resources.files("qwenchat") / "data" / "genie_configs"
    return Path(str(shipped))


def qwen2_genie_config() -> GenieConfig:
    return load_genie_config(genie_configs_dir() / "qwen2_7b_instruct.json")


def htp_ext_config_for_soc(soc: str) -> HtpBackendExtConfig:
    info = soc_info(soc)
    config = load_htp_ext_config(genie_configs_dir() / f"htp_backend_ext_config_{info.dsp_arch}.json")
    # Two chips share v73 (SM8550, SC8380): the arch picks the file, the table the soc_model.
    data = config.to_json_dict()
    for device in data["devices"]:
        device["soc_model"] = info.soc_model
        device["dsp_arch"] = info.dsp_arch
    return HtpBackendExtConfig.model_validate(data)
