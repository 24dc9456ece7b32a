"""Which prompt lengths a sweep runs: ``128..4096`` (powers of two), ``128..4096:512`` (steps),
``128,1000,3000`` (a list), or any comma-separated mix of those."""

from __future__ import annotations

from dataclasses import dataclass

from qwenchat.errors import UsageError

_HINT = "Use 128..4096 (powers of two), 128..4096:512 (steps) or 128,1000,3000 (a list)."


def _int(text: str, spec: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise UsageError(f"prompt length {text!r} in {spec!r} is not a whole number", hint=_HINT)
    value = int(text)
    if value < 1:
        raise UsageError(f"prompt length {value} in {spec!r} must be at least 1 token", hint=_HINT)
    return value


def _range(part: str, spec: str) -> list[int]:
    body, _, step_text = part.partition(":")
    lo_text, _, hi_text = body.partition("..")
    lo, hi = _int(lo_text, spec), _int(hi_text, spec)
    if lo > hi:
        raise UsageError(
            f"prompt-length range {part!r} runs backwards ({lo} > {hi})",
            hint=f"Write it low to high: {hi}..{lo}.",
        )
    if step_text:
        step = _int(step_text, spec)
        return list(range(lo, hi + 1, step))
    # Powers of two from lo: lo, 2lo, 4lo ... up to hi (hi itself when it is not on the way).
    out, n = [], lo
    while n <= hi:
        out.append(n)
        n *= 2
    if out[-1] != hi:
        out.append(hi)
    return out


def parse_lengths(spec: str) -> list[int]:
    """The sorted, de-duplicated prompt lengths a ``--prompt-len`` value asks for."""
    spec = (spec or "").strip()
    if not spec:
        raise UsageError("--prompt-len is empty", hint=_HINT)
    lengths: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"empty item in --prompt-len {spec!r}", hint=_HINT)
        lengths += _range(part, spec) if ".." in part else [_int(part, spec)]
    return sorted(set(lengths))


@dataclass(frozen=True)
class PlannedLength:
    requested: int  # what the user asked for
    tokens: int  # what runs: clamped so prompt + generated tokens fit the context

    @property
    def clamped(self) -> bool:
        return self.tokens != self.requested

    @property
    def label(self) -> str:
        return str(self.tokens) if not self.clamped else f"{self.tokens} (asked {self.requested})"


def default_lengths(context_size: int) -> list[int]:
    """The default sweep: powers of two from 128 up to the model's context (Qwen2's 4096:
    128..4096; Llama-v2-7B-Chat's 1024: 128..1024)."""
    return parse_lengths(f"{min(128, context_size)}..{context_size}")


def plan_lengths(
    lengths: list[int],
    *,
    context_size: int,
    gen_len: int,
    min_tokens: int,
    model: str = "the model",
) -> list[PlannedLength]:
    """Check the lengths against the context and the chat template's own tokens.

    A length beyond the context is an error; one that fits the context but leaves no room
    for ``gen_len`` generated tokens is clamped to the largest that does, and labelled.
    """
    if gen_len < 1:
        raise UsageError(f"--gen-len must be at least 1, not {gen_len}")
    largest = context_size - gen_len
    if largest < min_tokens:
        raise UsageError(
            f"--gen-len {gen_len} leaves no room for a prompt in {_possessive(model)} "
            f"{context_size}-token context",
            hint=f"Use --gen-len {context_size - min_tokens} or less.",
        )
    planned: list[PlannedLength] = []
    for n in lengths:
        if n > context_size:
            raise UsageError(
                f"prompt length {n} is beyond {_possessive(model)} {context_size}-token context",
                hint=f"Use lengths up to {context_size} (the largest is clamped to {largest} "
                f"to leave room for {gen_len} generated tokens).",
            )
        if n < min_tokens:
            raise UsageError(
                f"prompt length {n} is shorter than the chat template itself ({min_tokens} tokens)",
                hint=f"Use lengths of {min_tokens} tokens or more.",
            )
        planned.append(PlannedLength(requested=n, tokens=min(n, largest)))
    # Two requests clamped to the same length run once.
    seen: dict[int, PlannedLength] = {}
    for p in planned:
        seen.setdefault(p.tokens, p)
    return sorted(seen.values(), key=lambda p: p.tokens)


def _possessive(name: str) -> str:
    return "the model's" if name == "the model" else f"{name}'s"
