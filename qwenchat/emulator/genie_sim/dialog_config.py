"""genie_config.json as GenieDialogConfig_createFromJson reads it (the keys the sim needs).

Unknown keys are accepted (SDKs add keys over time); a missing mandatory key or a value of
the wrong type is "Failed to create the dialog config.", preceded by a log line naming it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from qwenchat.emulator.genie_sim.runtime import LaunchFailure

QNNHTP_MANDATORY = ("version", "spill-fill-bufsize", "mmap-budget", "use-mmap", "cpu-mask", "poll")


@dataclass(frozen=True)
class DialogConfig:
    context_size: int
    n_vocab: int
    bos_token: int
    eos_tokens: list[int]
    max_num_tokens: int | None
    stop_sequences: list[str]
    seed: int
    temp: float
    top_k: int
    top_p: float
    tokenizer_path: str
    ctx_bins: list[str]
    extensions: str | None
    identity: str  # what a saved state must have been made with

    def query_prefix(self, n_past: int) -> list[int]:
        """What Genie puts before a query's own tokens: EOS when the dialog already holds a
        turn, BOS (when the config has one) for a fresh one; both count as prompt tokens."""
        if n_past > 0:
            return [self.eos_tokens[0]]
        return [self.bos_token] if self.bos_token != -1 else []


def _fail(why: str) -> LaunchFailure:
    return LaunchFailure(f"[ERROR] {why}", "Failed to create the dialog config.")


def _get(obj: dict, path: str, kind: type | tuple[type, ...]):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise _fail(f'"Missing mandatory key: {path}"')
        cur = cur[part]
    if kind is int and isinstance(cur, bool):
        raise _fail(f'"Invalid type for key: {path}"')
    if not isinstance(cur, kind):
        raise _fail(f'"Invalid type for key: {path}"')
    return cur


def parse_dialog_config(text: str | None) -> DialogConfig:
    if not text or not text.strip():
        raise _fail('"Invalid config: empty JSON"')
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _fail(f'"Invalid config JSON: {exc}"') from None
    if not isinstance(data, dict):
        raise _fail('"Invalid config: not a JSON object"')
    d = _get(data, "dialog", dict)
    ctx = _get(d, "context", dict)
    size = _get(ctx, "size", int)
    n_vocab = _get(ctx, "n-vocab", int)
    bos = ctx.get("bos-token", -1)
    eos = _get(ctx, "eos-token", (int, list))
    eos_list = eos if isinstance(eos, list) else [eos]
    if not eos_list or not all(isinstance(e, int) for e in eos_list):
        raise _fail('"Invalid type for key: dialog.context.eos-token"')
    sampler = d.get("sampler", {})
    if not isinstance(sampler, dict):
        raise _fail('"Invalid type for key: dialog.sampler"')
    tok_path = _get(d, "tokenizer.path", str)
    engine = _get(d, "engine", dict)
    backend = _get(engine, "backend", dict)
    btype = _get(backend, "type", str)
    if btype != "QnnHtp":
        raise _fail(f'"Unsupported backend type: {btype}" (the SIMULATED phone has QnnHtp only)')
    htp = _get(backend, "QnnHtp", dict)
    for key in QNNHTP_MANDATORY:
        if key not in htp:
            raise _fail(f'"Missing mandatory key: dialog.engine.backend.QnnHtp.{key}"')
    bins = _get(engine, "model.binary.ctx-bins", list)
    if not bins or not all(isinstance(b, str) for b in bins):
        raise _fail('"Invalid type for key: dialog.engine.model.binary.ctx-bins"')
    max_tokens = d.get("max-num-tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 0):
        raise _fail('"Invalid type for key: dialog.max-num-tokens"')
    stops = d.get("stop-sequence", [])
    if isinstance(stops, str):
        stops = [stops]
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _fail('"Invalid type for key: dialog.stop-sequence"')
    ext = backend.get("extensions")
    identity = hashlib.sha256(
        json.dumps({"context": ctx, "ctx-bins": bins}, sort_keys=True).encode()
    ).hexdigest()[:16]
    try:
        return DialogConfig(
            context_size=size,
            n_vocab=n_vocab,
            bos_token=int(bos),
            eos_tokens=[int(e) for e in eos_list],
            max_num_tokens=max_tokens,
            stop_sequences=[s for s in stops if s],
            seed=int(sampler.get("seed", 0)),
            temp=float(sampler.get("temp", 0.8)),
            top_k=int(sampler.get("top-k", 40)),
            top_p=float(sampler.get("top-p", 0.95)),
            tokenizer_path=tok_path,
            ctx_bins=list(bins),
            extensions=ext if isinstance(ext, str) else None,
            identity=identity,
        )
    except (TypeError, ValueError):
        raise _fail('"Invalid value in dialog.sampler or dialog.context"') from None
