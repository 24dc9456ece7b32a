"""One benchmark trial: a fresh genie-t2t-run on the phone with ``--profile``.

Written on the same primitives as ``qwenchat.chat.runner`` (GenieInvocation, the stream
parser, parse_profile, diagnose) rather than on GenieRunner itself, because a trial needs
timings that runner does not keep: the host clock from the moment the process is started
(not from the prompt push) to the first token and to the process's end, so host-side
overhead can be told apart from Genie's own init + query + free.

Prompt text and the per-run config travel as files; only quoted paths reach the shell.
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from qwenchat.device.base import Device
from qwenchat.layout import PhoneLayout
from qwenchat.shellwords import quote


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


@dataclass
class TrialResult:
    length: int  # prompt tokens asked for (after clamping)
    seed: int
    ok: bool
    stop_reason: str  # "max-tokens", "eos", "error", "context-overflow", "cancelled"
    error: str | None = None
    error_hint: str | None = None
    exit_code: int | None = None
    genie: GenieFigures | None = None
    host: HostFigures | None = None
    libgenie_version: str | None = None
    profile: dict[str, Any] | None = None  # the raw JSON Genie wrote
    started_at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _event_duration_ms(doc: dict[str, Any], kind: str) -> float | None:
    for component in doc.get("components") or []:
        for event in component.get("events") or []:
            if isinstance(event, dict) and event.get("type") == kind:
                value = event.get("duration")
                if isinstance(value, int | float):
                    return value / 1000.0
    return None


class TrialRunner:
    """Runs trials on one phone with the bundle pushed in ``layout``."""

    def __init__(self, device: Device, layout: PhoneLayout, base_config: Any) -> None:
        self.device = device
        self.layout = layout
        self.base_config = base_config  # qwenchat.genie.config.GenieConfig read from the phone
        self._pid: int | None = None

    def run(self, prompt: str, *, length: int, gen_len: int, seed: int) -> TrialResult:

        tmp = self.layout.tmp_dir
        uid = uuid.uuid4().hex
        prompt_file = posixpath.join(tmp, f"bench-prompt-{uid}.txt")
        profile_file = posixpath.join(tmp, f"bench-profile-{uid}.json")
        config_file = posixpath.join(tmp, f"bench-config-{uid}.json")
        # max-num-tokens = gen-len, and a new sampler seed per trial as Qualcomm's harness does.
        config = self.base_config.with_overrides(max_num_tokens=gen_len, seed=seed)
        self.device.push_bytes(config.render().encode("utf-8"), config_file)
        self.device.push_bytes(prompt.encode("utf-8"), prompt_file)
        invocation = self.layout.genie_invocation(
            config=config_file,
            prompt_file=prompt_file,
            profile=profile_file,
            pid=True,
        )
        result = TrialResult(length=length, seed=seed, ok=False, stop_reason="error")
        try:
            self._run(invocation.shell_command(), prompt, result)
            if result.error is None:
                self._read_profile(profile_file, result, length, gen_len)
        except KeyboardInterrupt:
            if self._pid is not None:
                self._stop(self._pid)
            raise
        finally:
            self._pid = None
            try:
                files = (prompt_file, profile_file, config_file)
                self.device.shell("rm -f " + " ".join(quote(p) for p in files), timeout=30)
            except Exception:  # noqa: BLE001 - cleanup must not hide the trial's result
                pass
        return result

    def _run(self, command: str, prompt: str, result: TrialResult) -> None:
        from qwenchat.genie import stream as ev

        parser = ev.GenieStreamParser(prompt)
        other: list[str] = []
        ended = aborted = overflow = False
        first: float | None = None
        t0 = time.perf_counter()
        sent = time.monotonic()
        stream = self.device.stream_shell(command)
        with stream:
            for chunk in stream:
                now = time.perf_counter()
                for event in parser.feed(chunk):
                    if isinstance(event, ev.PidLine):
                        self._pid = event.pid
                    elif isinstance(event, ev.Banner):
                        result.libgenie_version = event.version
                    elif isinstance(event, ev.ReplyText) and event.text and first is None:
                        first = now
                    elif isinstance(event, ev.End):
                        ended = True
                    elif isinstance(event, ev.Abort):
                        aborted = True
                    elif isinstance(event, ev.ContextOverflow):
                        overflow = True
                    elif isinstance(event, ev.OtherLine):
                        other.append(event.text)
            for event in parser.finish():
                if isinstance(event, ev.End):
                    ended = True
                elif isinstance(event, ev.ContextOverflow):
                    overflow = True
                elif isinstance(event, ev.OtherLine):
                    other.append(event.text)
        t_end = time.perf_counter()
        stream_end = time.monotonic()
        result.exit_code = stream.exit_code
        result.host = HostFigures(
            first_token_ms=None if first is None else (first - t0) * 1000.0,
            total_ms=(t_end - t0) * 1000.0,
            overhead_ms=None,
            sent_monotonic=sent,
            ended_monotonic=stream_end,
        )
        stderr = stream.stderr.decode("utf-8", errors="replace") if stream.stderr else ""
        if overflow:
            result.stop_reason = "context-overflow"
            result.error = "Genie reports the context size was exceeded"
            return
        if stream.exit_code not in (0, None) or not ended or aborted:
            from qwenchat.genie.failures import diagnose

            text = "\n".join([*other, stderr])
            failure = diagnose(text)
            if failure is not None:
                result.error, result.error_hint = failure.message, failure.hint
            else:
                lines = [
                    line.strip() for line in text.splitlines()
                    if line.strip() and "[SIMULATED]" not in line
                ]
                code = stream.exit_code
                result.error = (
                    "genie-t2t-run stopped "
                    + (f"with exit code {code}" if code is not None else "unexpectedly")
                    + (f": {lines[-1]}" if lines else "")
                )

    def _read_profile(self, path: str, result: TrialResult, length: int, gen_len: int) -> None:
        from qwenchat.errors import GenieError
        from qwenchat.genie.profile import parse_profile

        if self.device.stat(path) is None:
            result.error = "genie-t2t-run exited without writing its --profile JSON"
            return
        raw = self.device.pull_bytes(path)
        try:
            profile = parse_profile(raw)
            doc = json.loads(raw)
        except GenieError as exc:
            result.error, result.error_hint = exc.message, exc.hint
            return
        result.profile = doc
        free_ms = _event_duration_ms(doc, "GenieDialog_free")
        result.genie = GenieFigures(
            init_ms=profile.init_ms,
            ttft_ms=profile.ttft_ms,
            prompt_tok_s=profile.prompt_processing_rate,
            decode_tok_s=profile.token_generation_rate,
            prompt_tokens=profile.num_prompt_tokens,
            generated_tokens=profile.num_generated_tokens,
            generation_ms=profile.generation_ms,
            query_ms=profile.query_ms,
            free_ms=free_ms,
        )
        if result.host is not None and profile.init_ms is not None and profile.query_ms is not None:
            own = profile.init_ms + profile.query_ms + (free_ms or 0.0)
            result.host.overhead_ms = result.host.total_ms - own
        if profile.num_prompt_tokens != length:
            result.error = (
                f"Genie counted {profile.num_prompt_tokens} prompt tokens, "
                f"the bench asked for {length}"
            )
            result.error_hint = (
                "The phone's tokenizer or genie_config (bos-token) differs from the one the "
                "prompt was made with; push the bundle again."
            )
            return
        result.ok = True
        result.stop_reason = "max-tokens" if profile.num_generated_tokens >= gen_len else "eos"

    def _stop(self, pid: int) -> None:
        for signal_name in ("-INT", "-9"):
            try:
                self.device.shell(f"kill {signal_name} {int(pid)}", timeout=10)
            except Exception:  # noqa: BLE001 - best effort on the way out of Ctrl-C
                return
            time.sleep(0.2)
            alive = self.device.shell("pidof genie-t2t-run", timeout=10).text.split()
            if str(pid) not in alive:
                return
