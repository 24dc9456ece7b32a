"""The sweep: for each prompt length, warm-ups then repetitions, each a fresh genie-t2t-run,
with the phone's temperature watched between trials and every trial stored as it completes.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from qwenchat import __version__
from qwenchat.bench.prompts import PromptMaker
from qwenchat.bench.roofline import ctx_bins_bytes
from qwenchat.bench.storage import BenchStorage, StoredRun, StoredTrial
from qwenchat.bench.sweep import PlannedLength, plan_lengths
from qwenchat.bench.thermal import (
    CooldownPolicy,
    CooldownResult,
    cool_down,
    read_power,
    read_thermal,
)
from qwenchat.bench.trial import TrialRunner
from qwenchat.device.info import read_device_info
from qwenchat.errors import QwenchatError, UsageError
from qwenchat.layout import DEFAULT_WORK_DIR, PhoneLayout
from qwenchat.models.tokens import TokenCounter
from qwenchat.runner import open_engine

QUALCOMM_PROTOCOL = {"warmup": 1, "repetitions": 25, "cooldown": "0", "gen_len": 128}


@dataclass
class BenchOptions:
    """What the user asked for, before it is checked against the phone."""

    lengths: list[int]
    gen_len: int = 128
    repetitions: int = 5
    warmup: int = 1
    seed: int | None = None
    cooldown: str = "auto"
    max_temp_c: float | None = None
    max_temp_action: str = "pause"  # pause | stop
    cooldown_max_wait_s: float = 300.0
    protocol: str = "default"  # default | qualcomm

    def __post_init__(self) -> None:
        if self.protocol not in ("default", "qualcomm"):
            raise UsageError(
                f"unknown --protocol {self.protocol!r}", hint="Use default or qualcomm."
            )
        if self.protocol == "qualcomm":
            self.warmup = QUALCOMM_PROTOCOL["warmup"]
            self.repetitions = QUALCOMM_PROTOCOL["repetitions"]
            self.cooldown = QUALCOMM_PROTOCOL["cooldown"]
            self.gen_len = QUALCOMM_PROTOCOL["gen_len"]
        if self.repetitions < 1:
            raise UsageError(
                f"-r/--repetitions must be at least 1, not {self.repetitions}",
                hint="Use -r 5 (the default) or more for a stable median.",
            )
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, not {self.warmup}")
        if self.gen_len < 1:
            raise UsageError(f"--gen-len must be at least 1, not {self.gen_len}")
        if self.max_temp_action not in ("pause", "stop"):
            raise UsageError(
                f"--max-temp-action {self.max_temp_action!r}", hint="Use pause or stop."
            )
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        self.policy()  # validates --cooldown

    def policy(self) -> CooldownPolicy:
        return CooldownPolicy.parse(
            self.cooldown, max_temp_c=self.max_temp_c, max_wait_s=self.cooldown_max_wait_s
        )


@dataclass(frozen=True)
class TrialSlot:
    length: PlannedLength
    rep: int  # warm-ups: -warmup .. -1; measured: 0 .. repetitions-1

    @property
    def warmup(self) -> bool:
        return self.rep < 0


def trial_seed(seed: int, length: int, rep: int) -> int:
    """A different, reproducible seed per trial (prompt text and sampler)."""
    digest = hashlib.sha256(f"{seed}:{length}:{rep}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def schedule(lengths: list[PlannedLength], warmup: int, repetitions: int) -> list[TrialSlot]:
    return [
        TrialSlot(length, rep)
        for length in lengths
        for rep in range(-warmup, repetitions)
    ]


@dataclass
class ProgressEvent:
    done: int
    total: int
    slot: TrialSlot
    trial: StoredTrial | None
    eta_s: float | None
    note: str = ""


class BenchStopped(QwenchatError):
    """The sweep stopped before the end (Ctrl-C, or --max-temp with stop); trials are kept."""

    exit_code = 130

    def __init__(self, run_id: str, why: str) -> None:
        super().__init__(
            f"bench run {run_id} stopped: {why}",
            hint=f"Finish it with `qwenchat bench --resume {run_id}`.",
        )
        self.run_id = run_id


@dataclass
class BenchSetup:
    """Everything known about the phone before the first trial."""

    context: dict[str, Any]
    maker: Any  # PromptMaker
    trials: Any  # TrialRunner
    context_size: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare(device: Any, work_dir: str | None = None) -> BenchSetup:
    """Read the bundle config, tokenizer and identity from the phone (BundleError if absent)."""

    layout = PhoneLayout(work_dir or DEFAULT_WORK_DIR)
    engine = open_engine(device, layout)
    bundle = engine.bundle
    config = bundle.config  # BundleError with a hint when nothing was pushed
    bundle.require_binary()
    counter = TokenCounter(bundle.tokenizer_file())
    info = read_device_info(device, layout.work_dir)
    manifest = bundle.manifest_bytes
    context = {
        "tool": "qwenchat",
        "tool_version": __version__,
        "device": info.to_dict(),
        "simulated": info.simulated,
        "config_hash": _sha256(config.render().encode()),
        "bundle_manifest_hash": None if manifest is None else _sha256(manifest),
        "context_size": config.context_size,
        # Bytes of context binaries: what decode reads per token (bench/roofline.py).
        "ctx_bins_bytes": ctx_bins_bytes(manifest, config.ctx_bins),
        "bos_token": config.bos_token,
        "libgenie_version": None,  # filled from the first trial's banner
        "work_dir": layout.work_dir,
        "engine": engine.name,
    }
    maker = PromptMaker(counter, adds_bos=config.bos_token != -1)
    return BenchSetup(context, maker, TrialRunner(engine), config.context_size)


@dataclass
class BenchRun:
    """One sweep against one phone, new or resumed."""

    device: Any
    storage: BenchStorage
    setup: BenchSetup
    options: BenchOptions
    lengths: list[PlannedLength]
    on_progress: Callable[[ProgressEvent], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    run_id: str | None = None
    baseline: dict[str, Any] | None = None
    _durations: list[float] = field(default_factory=list)

    def plan_json(self) -> dict[str, Any]:
        data = asdict(self.options)
        data["lengths"] = [asdict(p) for p in self.lengths]
        data["cooldown_policy"] = self.options.policy().as_json()
        return data

    def start(self) -> str:

        self.baseline = read_thermal(self.device).as_json()
        self.run_id = self.storage.create_run(self.plan_json(), self.setup.context, self.baseline)
        return self.run_id

    def execute(self, done: set[tuple[int, int]] | None = None) -> str:
        """Run every slot not in ``done`` ((length, rep) pairs); returns the run id."""

        assert self.run_id is not None
        done = done or set()
        slots = schedule(self.lengths, self.options.warmup, self.options.repetitions)
        todo = [s for s in slots if (s.length.tokens, s.rep) not in done]
        total, finished = len(slots), len(slots) - len(todo)
        policy = self.options.policy()
        between = policy
        if self.options.max_temp_action == "stop":
            # The ceiling stops the run: the wait between trials must not cool it away first.
            between = CooldownPolicy(
                policy.mode, policy.seconds, policy.margin_c, policy.max_wait_s, None
            )
        baseline_c = (self.baseline or {}).get("hottest_c")
        self.storage.set_status(self.run_id, "running")
        try:
            for index, slot in enumerate(todo):
                began = time.monotonic()
                cooldown: CooldownResult | None = None
                if index > 0 or finished > 0:
                    cooldown = cool_down(self.device, between, baseline_c, sleep=self.sleep)
                thermal = read_thermal(self.device)
                if (
                    policy.max_temp_c is not None
                    and thermal.hottest_c is not None
                    and thermal.hottest_c > policy.max_temp_c
                ):
                    if self.options.max_temp_action == "stop":
                        self.storage.set_status(self.run_id, "stopped")
                        raise BenchStopped(
                            self.run_id,
                            f"the phone is at {thermal.hottest_c:.1f} °C, above --max-temp "
                            f"{policy.max_temp_c:g} °C",
                        )
                    cooldown = cool_down(
                        self.device, CooldownPolicy("off", max_temp_c=policy.max_temp_c,
                                                    max_wait_s=policy.max_wait_s),
                        None, sleep=self.sleep,
                    )
                    thermal = read_thermal(self.device)
                power = read_power(self.device)
                stored = self._one(slot, thermal.as_json(), power.as_json(), cooldown)
                after = read_thermal(self.device)
                stored.thermal_after = after.as_json()
                self.storage.add_trial(self.run_id, stored)
                finished += 1
                self._durations.append(time.monotonic() - began)
                if self.on_progress is not None:
                    self.on_progress(
                        ProgressEvent(finished, total, slot, stored, self._eta(todo, index))
                    )
        except KeyboardInterrupt:
            self.storage.set_status(self.run_id, "interrupted", context=self.setup.context)
            raise BenchStopped(self.run_id, "interrupted") from None
        except BenchStopped:
            raise
        except QwenchatError as exc:  # the phone went away: keep what was measured
            self.storage.set_status(self.run_id, "interrupted", context=self.setup.context)
            raise BenchStopped(self.run_id, exc.message) from exc
        self.storage.set_status(self.run_id, "done", context=self.setup.context)
        return self.run_id

    def _eta(self, todo: list[TrialSlot], index: int) -> float | None:
        if not self._durations:
            return None
        # Time grows with length: scale the mean seconds per prompt token seen so far.
        seen = todo[: index + 1]
        per_token = sum(self._durations) / max(1, sum(s.length.tokens + 64 for s in seen))
        return per_token * sum(s.length.tokens + 64 for s in todo[index + 1 :])

    def _one(
        self,
        slot: TrialSlot,
        thermal: dict[str, Any],
        power: dict[str, Any],
        cooldown: CooldownResult | None,
    ) -> StoredTrial:
        seed = trial_seed(int(self.options.seed or 0), slot.length.tokens, slot.rep)
        prompt = self.setup.maker.make(slot.length.tokens, seed)
        result = self.setup.trials.run(
            prompt.text, length=slot.length.tokens, gen_len=self.options.gen_len, seed=seed
        )
        if result.libgenie_version and not self.setup.context.get("libgenie_version"):
            self.setup.context["libgenie_version"] = result.libgenie_version
        return StoredTrial(
            length=slot.length.tokens,
            requested=slot.length.requested,
            rep=slot.rep,
            warmup=slot.warmup,
            ok=result.ok,
            stop_reason=result.stop_reason if result.ok or result.error is None else "error",
            error=result.error,
            result=result.as_json(),
            thermal_before=thermal,
            thermal_after=None,
            power=power,
            cooldown=None if cooldown is None else asdict(cooldown),
        )


def new_run(
    device: Any,
    storage: BenchStorage,
    options: BenchOptions,
    *,
    work_dir: str | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> str:

    setup = prepare(device, work_dir)
    lengths = plan_lengths(
        options.lengths,
        context_size=setup.context_size,
        gen_len=options.gen_len,
        min_tokens=setup.maker.min_tokens,
    )
    run = BenchRun(device, storage, setup, options, lengths, on_progress)
    run_id = run.start()
    if on_start is not None:
        on_start(run_id)
    return run.execute()


def resume_run(
    device: Any,
    storage: BenchStorage,
    run_id: str | None,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> str:
    """Finish an interrupted sweep (the latest unfinished one when ``run_id`` is None)."""
    if run_id is None:
        unfinished = storage.run_ids(unfinished=True)
        if not unfinished:
            raise UsageError("no interrupted bench run to resume", hint="Start one: qwenchat bench")
        run_id = unfinished[0]
    stored = storage.load_run(run_id)
    if stored is None:
        raise UsageError(f"no bench run {run_id!r}", hint="See the run ids printed when runs start.")
    if stored.status == "done":
        raise UsageError(f"bench run {run_id} is already complete", hint="Start a new one.")
    plan = dict(stored.plan)
    lengths = [PlannedLength(**p) for p in plan.pop("lengths")]
    plan.pop("cooldown_policy", None)
    plan["protocol"] = "default"  # the stored values already hold what the protocol set
    options = BenchOptions(lengths=[p.requested for p in lengths], **plan)
    setup = prepare(device, stored.context.get("work_dir"))
    _check_same_phone(stored, setup.context)
    setup.context["libgenie_version"] = stored.context.get("libgenie_version")
    run = BenchRun(device, storage, setup, options, lengths, on_progress, run_id=run_id,
                   baseline=stored.baseline)
    if on_start is not None:
        on_start(run_id)
    return run.execute({(t.length, t.rep) for t in stored.trials})


def _check_same_phone(stored: StoredRun, context: dict[str, Any]) -> None:
    before, now = stored.context.get("device", {}), context.get("device", {})
    for key, label in (("serial", "phone"), ("soc", "SoC")):
        if before.get(key) != now.get(key):
            raise UsageError(
                f"bench run {stored.id} ran on {label} {before.get(key)!r}, "
                f"this is {now.get(key)!r}",
                hint="Resume it on the same phone, or start a new run.",
            )
    if stored.context.get("config_hash") != context.get("config_hash"):
        raise UsageError(
            f"the phone's genie_config.json changed since bench run {stored.id} started",
            hint="Its figures would not compare: start a new run.",
        )
