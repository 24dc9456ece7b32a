"""The bench's typed records, from the runner to every printer.

One ``TrialRecord`` per trial (what ``trial.trial_result`` read from the runner's
``QueryRecord``, with the phone's temperature, power and cool-down around it and the bundle
it ran on), one ``RunContext`` (the phone, the model, the bundle), one ``RunPlan`` (what was
asked) and one ``RunRecord`` holding them. As llama-bench's one ``test`` record feeds every
printer, these feed the report, Markdown/CSV, compare and the plot, which read attributes,
never string paths into dicts.

JSON exists only at the edges: ``to_json``/``from_json`` for the SQLite store and for the
files and stdout a report is written to. ``from_json`` reads what every earlier version
stored (a missing key takes the value that version implied), so old stores still open.
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from qwenchat.bench.sweep import PlannedLength
from qwenchat.bench.thermal import CooldownPolicy, CooldownResult, PowerState, ThermalReading
from qwenchat.device.info import DeviceInfo
from qwenchat.runner.outcome import Outcome

# Why a trial's genie-t2t-run ended (stored as the value): the runner's vocabulary
# (runner/outcome.py), whole; Outcome.parse reads the words bench stored before m045.
StopReason = Outcome


# How a run drove Genie, in the words every output uses (table, JSON, CSV, Markdown, store).
ENGINE_LABELS = {
    "process": "process (a fresh genie-t2t-run per trial: the model loads every trial)",
    "session": "session (warm dialog: one genie-app, model loaded once, dialog reset "
    "between trials)",
}


def engine_label(engine: str) -> str:
    return ENGINE_LABELS.get(engine, engine)


class RunStatus(StrEnum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped before its end; --resume finishes it
    DONE = "done"
    STOPPED = "stopped"  # ended early on purpose (--max-temp-action stop, the bundle changed)

    @classmethod
    def parse(cls, text: str) -> RunStatus:
        try:
            return cls(text)
        except ValueError:
            return cls.INTERRUPTED


# ----- the figures of one trial
@dataclass
class GenieFigures:
    """From Genie's own profiler (the --profile JSON), per trial."""

    init_ms: float | None
    ttft_ms: float
    prompt_tok_s: float
    decode_tok_s: float
    prompt_tokens: int
    generated_tokens: int
    generation_ms: float
    query_ms: float | None
    free_ms: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> GenieFigures | None:
        return _build(cls, data)


@dataclass
class HostFigures:
    """From the host's clock: process start (the shell command sent) to first token / end."""

    first_token_ms: float | None
    total_ms: float
    overhead_ms: float | None  # total minus Genie's own create + query + free durations
    # time.monotonic() when the command was sent and when the stream ended: comparable with
    # the profile's timestamps only when phone and host share a clock (the emulator).
    sent_monotonic: float = 0.0
    ended_monotonic: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> HostFigures | None:
        return _build(cls, data)


@dataclass
class TrialResult:
    """What one genie-t2t-run measured (``trial.trial_result`` reads it off the runner's
    record)."""

    length: int  # prompt tokens asked for (after clamping)
    seed: int
    ok: bool
    stop_reason: StopReason
    error: str | None = None
    error_hint: str | None = None
    exit_code: int | None = None
    genie: GenieFigures | None = None
    host: HostFigures | None = None
    libgenie_version: str | None = None
    profile: dict[str, Any] | None = None  # the raw document Genie wrote: Genie's own format
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop_reason"] = self.stop_reason.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        return cls(
            length=int(data.get("length") or 0),
            seed=int(data.get("seed") or 0),
            ok=bool(data.get("ok")),
            stop_reason=StopReason.parse(data.get("stop_reason")),
            error=data.get("error"),
            error_hint=data.get("error_hint"),
            exit_code=data.get("exit_code"),
            genie=GenieFigures.from_json(data.get("genie")),
            host=HostFigures.from_json(data.get("host")),
            libgenie_version=data.get("libgenie_version"),
            profile=data.get("profile"),
            started_at=float(data.get("started_at") or 0.0),
        )


@dataclass
class TrialRecord:
    """One trial as stored: its slot in the sweep, its result and the phone around it."""

    length: int  # prompt tokens run
    requested: int  # prompt tokens asked for (before clamping)
    rep: int  # warm-ups are negative
    result: TrialResult
    thermal_before: ThermalReading | None = None
    thermal_after: ThermalReading | None = None
    power: PowerState | None = None
    cooldown: CooldownResult | None = None
    # SHA-256 of the phone's bundle manifest when the trial ran (None in runs stored before
    # it was recorded per trial: their run context holds the one hash).
    manifest_hash: str | None = None

    @property
    def warmup(self) -> bool:
        return self.rep < 0

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def stop_reason(self) -> StopReason:
        return self.result.stop_reason

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def genie(self) -> GenieFigures | None:
        return self.result.genie

    @property
    def host(self) -> HostFigures | None:
        return self.result.host

    def to_json(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "requested": self.requested,
            "rep": self.rep,
            "warmup": self.warmup,
            "ok": self.ok,
            "stop_reason": self.stop_reason.value,
            "error": self.error,
            "manifest_hash": self.manifest_hash,
            "result": self.result.to_json(),
            "thermal_before": _json(self.thermal_before),
            "thermal_after": _json(self.thermal_after),
            "power": _json(self.power),
            "cooldown": _json(self.cooldown),
        }


# ----- the run
@dataclass
class RunPlan:
    """What the sweep was asked to do, after the lengths were checked against the phone."""

    lengths: list[PlannedLength]
    gen_len: int
    repetitions: int
    warmup: int
    seed: int
    cooldown: str = "auto"
    max_temp_c: float | None = None
    max_temp_action: str = "pause"  # pause | stop
    cooldown_max_wait_s: float = 300.0
    protocol: str = "default"  # default | qualcomm
    load_timeout_s: float | None = None  # None: the runner's derived bound
    stall_timeout_s: float | None = None

    def policy(self) -> CooldownPolicy:
        return CooldownPolicy.parse(
            self.cooldown, max_temp_c=self.max_temp_c, max_wait_s=self.cooldown_max_wait_s
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cooldown_policy"] = self.policy().as_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunPlan:
        return cls(
            lengths=[
                PlannedLength(int(p["requested"]), int(p["tokens"]))
                for p in data.get("lengths") or []
            ],
            gen_len=int(data.get("gen_len") or 128),
            repetitions=int(data.get("repetitions") or 1),
            warmup=int(data.get("warmup") or 0),
            seed=int(data.get("seed") or 0),
            cooldown=str(data.get("cooldown") or "auto"),
            max_temp_c=data.get("max_temp_c"),
            max_temp_action=str(data.get("max_temp_action") or "pause"),
            cooldown_max_wait_s=float(data.get("cooldown_max_wait_s") or 300.0),
            protocol=str(data.get("protocol") or "default"),
            load_timeout_s=data.get("load_timeout_s"),
            stall_timeout_s=data.get("stall_timeout_s"),
        )


@dataclass
class RunContext:
    """The phone, the model and the bundle a run measured."""

    device: DeviceInfo
    model: str  # ModelSpec.name
    published_key: str | None  # its entry in published_figures.json (None: no figures)
    config_hash: str  # SHA-256 of the phone's genie_config.json as rendered
    bundle_manifest_hash: str | None  # SHA-256 of the bundle manifest when the run started
    context_size: int
    ctx_bins_bytes: int | None  # bytes of context binaries: what decode reads per token
    bos_token: int
    work_dir: str
    engine: str = "process"
    libgenie_version: str | None = None  # from the first trial's banner
    simulated: bool = False
    tool: str = "qwenchat"
    tool_version: str = ""

    @property
    def engine_label(self) -> str:
        return engine_label(self.engine)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "engine_label": self.engine_label}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, model: str) -> RunContext:
        """``model``: the run's model column (runs stored before models were named hold the
        default, and their published key is that model's name)."""
        device = device_from_json(data.get("device") or {})
        return cls(
            device=device,
            model=model,
            published_key=data["published_key"] if "published_key" in data else model,
            config_hash=str(data.get("config_hash") or ""),
            bundle_manifest_hash=data.get("bundle_manifest_hash"),
            context_size=int(data.get("context_size") or 0),
            ctx_bins_bytes=data.get("ctx_bins_bytes"),
            bos_token=-1 if data.get("bos_token") is None else int(data["bos_token"]),
            work_dir=str(data.get("work_dir") or device.work_dir),
            engine=str(data.get("engine") or "process"),
            libgenie_version=data.get("libgenie_version"),
            simulated=bool(data.get("simulated", device.simulated)),
            tool=str(data.get("tool") or "qwenchat"),
            tool_version=str(data.get("tool_version") or ""),
        )


@dataclass
class RunRecord:
    """One bench run: what was asked, on what, and every trial so far."""

    id: str
    created_at: float
    status: RunStatus
    plan: RunPlan
    context: RunContext
    finished_at: float | None = None
    baseline: ThermalReading | None = None
    trials: list[TrialRecord] = field(default_factory=list)
    note: str | None = None  # why the run ended early, in one line

    @property
    def model(self) -> str:
        return self.context.model

    @property
    def simulated(self) -> bool:
        return self.context.simulated

    @property
    def measured(self) -> list[TrialRecord]:
        return [t for t in self.trials if not t.warmup]

    @property
    def unfinished(self) -> bool:
        return self.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED)


# ----- JSON helpers
def _json(value: Any) -> Any:
    return None if value is None else value.as_json()


def _build(cls: Any, data: dict[str, Any] | None) -> Any:
    """A flat dataclass from a dict: unknown keys ignored, missing ones None (or default)."""
    if not data:
        return None
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            values[f.name] = None
    return cls(**values)


def _empty(hint: Any) -> Any:
    """The value a DeviceInfo field takes when an old record lacks it."""
    if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint):
        return None
    return {str: "", bool: False, int: 0}.get(hint)


def device_from_json(data: dict[str, Any]) -> DeviceInfo:
    """The phone as stored (``DeviceInfo.to_dict``); fields added since take empty values."""
    hints = typing.get_type_hints(DeviceInfo)
    values = {
        f.name: data[f.name] if f.name in data else _empty(hints[f.name])
        for f in dataclasses.fields(DeviceInfo)
    }
    return DeviceInfo(**values)
