"""The sweep: for each prompt length, warm-ups then repetitions, each a fresh genie-t2t-run,
with the phone's temperature watched between trials and every trial stored as it completes.

Whatever ends a sweep early, the trials done so far are in the store and the run says why:
Ctrl-C, SIGTERM or SIGHUP (the runner stops the phone's process; exit 130/143/129), the phone
lost (exit 75, as DeviceLostError), or the bundle on the phone changed under the run (every
trial records the manifest hash it ran with; figures of two bundles never mix in one run).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from qwenchat import __version__, signals
from qwenchat.bench.prompts import ChatFrame, PromptMaker
from qwenchat.bench.records import (
    RunContext,
    RunPlan,
    RunRecord,
    RunStatus,
    StopReason,
    TrialRecord,
)
from qwenchat.bench.roofline import ctx_bins_bytes
from qwenchat.bench.storage import BenchStorage
from qwenchat.bench.sweep import PlannedLength, default_lengths, plan_lengths
from qwenchat.bench.thermal import (
    CooldownPolicy,
    CooldownResult,
    PowerState,
    ThermalReading,
    cool_down,
    read_power,
    read_thermal,
)
from qwenchat.bench.trial import TrialRunner
from qwenchat.device.info import read_device_info
from qwenchat.errors import DeviceError, DeviceLostError, PhoneFullError, QwenchatError, UsageError
from qwenchat.layout import DEFAULT_WORK_DIR, PhoneLayout
from qwenchat.models.registry import get_model
from qwenchat.models.tokens import TokenCounter
from qwenchat.runner import open_engine

if TYPE_CHECKING:
    from qwenchat.device.base import Device
    from qwenchat.models.spec import ModelSpec

class _Protocol(TypedDict):
    warmup: int
    repetitions: int
    cooldown: str
    gen_len: int


QUALCOMM_PROTOCOL: _Protocol = {"warmup": 1, "repetitions": 25, "cooldown": "0", "gen_len": 128}


@dataclass
class BenchOptions:
    """What the user asked for, before it is checked against the phone."""

    lengths: list[int] | None  # None: 128..context of the model on the phone
    gen_len: int = 128
    repetitions: int = 5
    warmup: int = 1
    seed: int | None = None
    cooldown: str = "auto"
    max_temp_c: float | None = None
    max_temp_action: str = "pause"  # pause | stop
    cooldown_max_wait_s: float = 300.0
    protocol: str = "default"  # default | qualcomm
    load_timeout_s: float | None = None  # None: derived (WaitBounds.for_prompt)
    stall_timeout_s: float | None = None
    model: str | None = None  # --model; None: the one on the phone
    # process: a fresh genie-t2t-run per trial (how the published figures were measured);
    # session: one genie-app, the model loaded once, `dialog reset` between trials.
    engine: str = "process"

    def __post_init__(self) -> None:
        if self.engine not in ("process", "session"):
            raise UsageError(
                f"unknown --engine {self.engine!r}",
                hint="Use process (a fresh process per trial) or session (a warm dialog).",
            )
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
        for flag, value in (("--load-timeout", self.load_timeout_s),
                            ("--stall-timeout", self.stall_timeout_s)):
            if value is not None and not value > 0:
                raise UsageError(
                    f"{flag} must be a number of seconds above 0, not {value:g}",
                    hint=f"Leave {flag} out for a bound derived from the prompt length.",
                )
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        self.policy()  # validates --cooldown

    def policy(self) -> CooldownPolicy:
        return CooldownPolicy.parse(
            self.cooldown, max_temp_c=self.max_temp_c, max_wait_s=self.cooldown_max_wait_s
        )

    def plan(self, lengths: list[PlannedLength]) -> RunPlan:
        return RunPlan(
            lengths=lengths,
            gen_len=self.gen_len,
            repetitions=self.repetitions,
            warmup=self.warmup,
            seed=int(self.seed or 0),
            cooldown=self.cooldown,
            max_temp_c=self.max_temp_c,
            max_temp_action=self.max_temp_action,
            cooldown_max_wait_s=self.cooldown_max_wait_s,
            protocol=self.protocol,
            load_timeout_s=self.load_timeout_s,
            stall_timeout_s=self.stall_timeout_s,
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
    """``started``: ``slot`` is about to run (``done`` trials finished before it);
    ``finished``: ``trial`` is stored."""

    done: int
    total: int
    slot: TrialSlot
    trial: TrialRecord | None
    eta_s: float | None
    phase: str = "finished"  # "started" | "finished"


class BenchStopped(QwenchatError):
    """The sweep stopped before its end; the trials done so far are stored."""

    def __init__(self, run_id: str, why: str, *, exit_code: int = 130, resumable: bool = True):
        hint = (
            f"Finish it with `qwenchat bench --resume {run_id}`."
            if resumable
            else "Its trials are kept (`qwenchat results show " + run_id + "`); start a new run."
        )
        super().__init__(f"bench run {run_id} stopped: {why}", hint=hint)
        self.run_id = run_id
        self.exit_code = exit_code


@dataclass
class BenchSetup:
    """Everything known about the phone before the first trial."""

    context: RunContext
    maker: PromptMaker
    trials: TrialRunner
    spec: ModelSpec
    layout: PhoneLayout

    @property
    def context_size(self) -> int:
        return self.context.context_size


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest_hash(device: Device, layout: PhoneLayout) -> str | None:
    """SHA-256 of the bundle manifest on the phone now (None: there is none)."""
    path = layout.manifest_path
    if device.stat(path) is None:
        return None
    return _sha256(device.pull_bytes(path))


def prepare(
    device: Device,
    work_dir: str | None = None,
    *,
    model: ModelSpec | None = None,
    load_s: float | None = None,
    stall_s: float | None = None,
    engine_kind: str = "process",
) -> BenchSetup:
    """Read the bundle config, tokenizer and identity from the phone (BundleError if absent,
    or if it holds another model than ``model``). ``engine_kind`` session: genie-app must
    answer its probe (no fallback: the run would not measure what it says)."""

    layout = PhoneLayout(work_dir or DEFAULT_WORK_DIR)
    engine = open_engine(device, layout, kind=engine_kind)
    try:
        return _setup(engine, device, layout, model, load_s, stall_s)
    except BaseException:
        engine.close()
        raise


def _setup(engine, device, layout, model, load_s, stall_s) -> BenchSetup:  # noqa: ANN001
    bundle = engine.bundle
    config = bundle.config  # BundleError with a hint when nothing was pushed
    spec = bundle.require_model(model)
    bundle.require_binary()
    counter = TokenCounter(bundle.tokenizer_file())
    info = read_device_info(device, layout.work_dir)
    manifest = bundle.manifest_bytes
    context = RunContext(
        device=info,
        model=spec.name,
        published_key=spec.published_key,
        config_hash=_sha256(config.render().encode()),
        bundle_manifest_hash=None if manifest is None else _sha256(manifest),
        context_size=config.context_size,
        # Bytes of context binaries: what decode reads per token (bench/roofline.py).
        ctx_bins_bytes=ctx_bins_bytes(manifest, config.ctx_bins),
        bos_token=config.bos_token,
        work_dir=layout.work_dir,
        engine=engine.name,
        simulated=info.simulated,
        tool_version=__version__,
    )
    maker = PromptMaker(counter, adds_bos=config.bos_token != -1, frame=ChatFrame.for_model(spec))
    trials = TrialRunner(engine, context_size=config.context_size, load_s=load_s, stall_s=stall_s)
    return BenchSetup(context, maker, trials, spec, layout)


class _BundleChanged(Exception):
    def __init__(self, before: str | None, now: str | None) -> None:
        super().__init__(f"{_short(before)} → {_short(now)}")


def _short(digest: str | None) -> str:
    return "none" if digest is None else digest[:12]


@dataclass
class BenchRun:
    """One sweep against one phone, new or resumed."""

    device: Device
    storage: BenchStorage
    setup: BenchSetup
    plan: RunPlan
    on_progress: Callable[[ProgressEvent], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    run_id: str | None = None
    baseline: ThermalReading | None = None
    _durations: list[float] = field(default_factory=list)

    @property
    def context(self) -> RunContext:
        return self.setup.context

    def start(self) -> str:
        self.baseline = read_thermal(self.device)
        self.run_id = self.storage.create_run(self.plan, self.context, self.baseline)
        return self.run_id

    def execute(self, done: set[tuple[int, int]] | None = None) -> str:
        """Run every slot not in ``done`` ((length, rep) pairs); returns the run id."""

        assert self.run_id is not None
        run_id = self.run_id
        done = done or set()
        slots = schedule(self.plan.lengths, self.plan.warmup, self.plan.repetitions)
        todo = [s for s in slots if (s.length.tokens, s.rep) not in done]
        total, finished = len(slots), len(slots) - len(todo)
        policy = self.plan.policy()
        between = policy
        if self.plan.max_temp_action == "stop":
            # The ceiling stops the run: the wait between trials must not cool it away first.
            between = CooldownPolicy(
                policy.mode, policy.seconds, policy.margin_c, policy.max_wait_s, None
            )
        baseline_c = self.baseline.hottest_c if self.baseline is not None else None
        self.storage.set_status(run_id, RunStatus.RUNNING)
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
                    if self.plan.max_temp_action == "stop":
                        why = (
                            f"the phone is at {thermal.hottest_c:.1f} °C, above --max-temp "
                            f"{policy.max_temp_c:g} °C"
                        )
                        self._end(RunStatus.STOPPED, why)
                        raise BenchStopped(run_id, why, exit_code=1, resumable=False)
                    cooldown = cool_down(
                        self.device, CooldownPolicy("off", max_temp_c=policy.max_temp_c,
                                                    max_wait_s=policy.max_wait_s),
                        None, sleep=self.sleep,
                    )
                    thermal = read_thermal(self.device)
                power = read_power(self.device)
                before = self._check_bundle()
                if self.on_progress is not None:
                    self.on_progress(ProgressEvent(
                        finished, total, slot, None, self._eta(todo, index - 1), "started"
                    ))
                stored = self._one(slot, thermal, power, cooldown, before)
                lost: DeviceError | None = None
                try:
                    stored.thermal_after = read_thermal(self.device)
                    after = read_manifest_hash(self.device, self.setup.layout)
                except DeviceError as exc:  # store what the trial measured first
                    lost, after = exc, before
                if after != before:
                    stored.result.ok = False
                    stored.result.stop_reason = StopReason.FAILED
                    stored.result.error = (
                        "the phone's bundle changed while this trial ran "
                        f"(manifest {_short(before)} → {_short(after)})"
                    )
                self.storage.add_trial(run_id, stored)
                finished += 1
                self._durations.append(time.monotonic() - began)
                if self.on_progress is not None:
                    self.on_progress(
                        ProgressEvent(finished, total, slot, stored, self._eta(todo, index))
                    )
                if lost is not None:
                    raise lost
                if after != before:
                    raise _BundleChanged(before, after)
                if stored.stop_reason is StopReason.DEVICE_LOST:
                    raise DeviceLostError(stored.error or "the phone was lost mid-trial")
                if (stored.result.error_hint or "").startswith(PhoneFullError.default_hint):
                    # Every further trial would fail the same way: stop, say what to free.
                    raise PhoneFullError(
                        stored.error or "the phone's storage is full", stored.result.error_hint
                    )
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the runner stopped Genie
            why = f"interrupted ({exc})" if str(exc) else "interrupted"
            self._end(RunStatus.INTERRUPTED, why)
            raise BenchStopped(run_id, why, exit_code=signals.exit_code(exc)) from None
        except _BundleChanged as exc:
            why = (
                f"the phone's bundle changed during the run (manifest {exc}): figures of two "
                "bundles would not compare"
            )
            self._end(RunStatus.STOPPED, why)
            raise BenchStopped(run_id, why, exit_code=1, resumable=False) from None
        except BenchStopped:
            raise
        except PhoneFullError as exc:  # not a lost phone: the link is fine, the disk is not
            self._end(RunStatus.INTERRUPTED, exc.message)
            stopped = BenchStopped(run_id, exc.message, exit_code=PhoneFullError.exit_code)
            stopped.hint = f"{exc.hint} Then: {stopped.hint}"
            raise stopped from exc
        except DeviceError as exc:  # the phone went away: keep what was measured
            why = f"the phone was lost: {exc.message}"
            self._end(RunStatus.INTERRUPTED, why)
            raise BenchStopped(run_id, why, exit_code=DeviceLostError.exit_code) from exc
        except QwenchatError as exc:
            self._end(RunStatus.INTERRUPTED, exc.message)
            raise BenchStopped(run_id, exc.message, exit_code=exc.exit_code) from exc
        self._end(RunStatus.DONE, None)
        return run_id

    def _end(self, status: RunStatus, note: str | None) -> None:
        assert self.run_id is not None
        self.storage.set_status(self.run_id, status, context=self.context, note=note)

    def _check_bundle(self) -> str | None:
        """The manifest hash now; _BundleChanged when it is not the one the run started with."""
        now = read_manifest_hash(self.device, self.setup.layout)
        if now != self.context.bundle_manifest_hash:
            raise _BundleChanged(self.context.bundle_manifest_hash, now)
        return now

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
        thermal: ThermalReading,
        power: PowerState,
        cooldown: CooldownResult | None,
        manifest_hash: str | None,
    ) -> TrialRecord:
        seed = trial_seed(self.plan.seed, slot.length.tokens, slot.rep)
        prompt = self.setup.maker.make(slot.length.tokens, seed)
        result = self.setup.trials.run(
            prompt.text, length=slot.length.tokens, gen_len=self.plan.gen_len, seed=seed,
            run_seed=self.plan.seed,
        )
        if result.libgenie_version and not self.context.libgenie_version:
            self.context.libgenie_version = result.libgenie_version
        return TrialRecord(
            length=slot.length.tokens,
            requested=slot.length.requested,
            rep=slot.rep,
            result=result,
            thermal_before=thermal,
            power=power,
            cooldown=cooldown,
            manifest_hash=manifest_hash,
        )


def new_run(
    device: Device,
    storage: BenchStorage,
    options: BenchOptions,
    *,
    work_dir: str | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> str:

    wanted = None if options.model is None else get_model(options.model)
    setup = prepare(
        device, work_dir, model=wanted,
        load_s=options.load_timeout_s, stall_s=options.stall_timeout_s,
        engine_kind=options.engine,
    )
    lengths = plan_lengths(
        options.lengths if options.lengths is not None else default_lengths(setup.context_size),
        context_size=setup.context_size,
        gen_len=options.gen_len,
        min_tokens=setup.maker.min_tokens,
        model=setup.spec.display_name,
    )
    run = BenchRun(device, storage, setup, options.plan(lengths), on_progress)
    try:
        run_id = run.start()
        if on_start is not None:
            on_start(run_id)
        return run.execute()
    finally:
        _close(setup)


def resume_run(
    device: Device,
    storage: BenchStorage,
    run_ref: str | None,
    *,
    model: str | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> str:
    """Finish an interrupted sweep: ``run_ref`` is an id, a unique prefix or ``last``; None
    takes the latest unfinished one. Refused unless the phone is the same phone (serial and
    address), with the same SoC, model, config and bundle."""
    if run_ref is None:
        unfinished = storage.run_ids(unfinished=True)
        if not unfinished:
            raise UsageError("no interrupted bench run to resume", hint="Start one: qwenchat bench")
        run_ref = unfinished[0]
    stored = storage.get_run(run_ref)
    if not stored.unfinished:
        raise UsageError(
            f"bench run {stored.id} is already {'complete' if stored.status == 'done' else stored.status}",
            hint="Start a new one: qwenchat bench",
        )
    if model is not None and get_model(model).name != stored.model:
        raise UsageError(
            f"bench run {stored.id} measured {stored.model}, not {get_model(model).name}",
            hint="Drop --model to resume it, or start a new run.",
        )
    plan = stored.plan
    setup = prepare(
        device, stored.context.work_dir, model=get_model(stored.model),
        load_s=plan.load_timeout_s, stall_s=plan.stall_timeout_s,
        engine_kind=stored.context.engine,  # a resumed run measures as it started
    )
    try:
        return _resume(device, storage, stored, setup, plan, on_progress, on_start)
    finally:
        _close(setup)


def _close(setup: BenchSetup) -> None:
    try:
        setup.trials.engine.close()  # a session's genie-app ends with the run
    except QwenchatError:
        pass


def _resume(device, storage, stored, setup, plan, on_progress, on_start) -> str:  # noqa: ANN001
    check_same_phone(stored, setup.context)
    setup.context.libgenie_version = stored.context.libgenie_version
    # Trials the link took away measured nothing: run those slots again.
    redo = (StopReason.DEVICE_LOST, StopReason.CUT)
    done = {(t.length, t.rep) for t in stored.trials if t.stop_reason not in redo}
    run = BenchRun(device, storage, setup, plan, on_progress, run_id=stored.id,
                   baseline=stored.baseline)
    if on_start is not None:
        on_start(stored.id)
    return run.execute(done)


def check_same_phone(stored: RunRecord, now: RunContext) -> None:
    """UsageError naming the first thing that differs between the run and the phone now."""
    before = stored.context
    checks = (
        ("model", before.model, now.model),
        ("phone", before.device.serial, now.device.serial),
        ("phone at", before.device.address, now.device.address),
        ("SoC", before.device.soc, now.device.soc),
    )
    for label, was, is_now in checks:
        if was != is_now:
            raise UsageError(
                f"bench run {stored.id} ran on {label} {was!r}, this is {is_now!r}",
                hint="Resume it on the same phone (-s/--connect as when it started), "
                "or start a new run.",
            )
    if before.config_hash != now.config_hash:
        raise UsageError(
            f"the phone's genie_config.json changed since bench run {stored.id} started",
            hint="Its figures would not compare: start a new run.",
        )
    if before.bundle_manifest_hash != now.bundle_manifest_hash:
        raise UsageError(
            f"the phone's bundle changed since bench run {stored.id} started (manifest "
            f"{_short(before.bundle_manifest_hash)} → {_short(now.bundle_manifest_hash)})",
            hint="Its figures would not compare: start a new run.",
        )
