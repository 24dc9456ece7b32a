"""What a feature asks of the runner: one query, its sampling, its dialog and its bounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

_SETTING_KEYS = ("temp", "top_k", "top_p", "seed", "max_tokens")


@dataclass(frozen=True)
class SamplerSettings:
    """Sampling and length for a query; None keeps the bundle's genie_config.json value.

    They live in the query's genie_config.json, not in the dialog's KV state: changing them
    never forces a chat to rebuild its context.
    """

    temp: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None

    @property
    def is_default(self) -> bool:
        return all(getattr(self, key) is None for key in _SETTING_KEYS)

    def updated(self, **values: Any) -> SamplerSettings:
        return replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


# Derived bounds. Generous on purpose: a bound that trips on a slow but healthy phone is
# worse than a late one. A 7B model load takes seconds (a public report of an 8B Genie model:
# 3.77 s init), minutes only when something is stuck; prefill runs ~750 tok/s on an 8 Elite,
# and 50 tok/s is far below any NPU's; decode is ~13 tok/s, so 30 s without a token is a hang.
LOAD_BUDGET_S = 120.0
PREFILL_FLOOR_TOK_S = 50.0
STALL_S = 30.0


@dataclass(frozen=True)
class WaitBounds:
    """How long the host waits on the phone before it calls a query stuck (seconds).

    ``first_token``: from the command to the first reply text (model load and prefill
    included); ``stall``: the longest silence once the reply flows. None waits forever.
    """

    first_token: float | None = None
    stall: float | None = None

    @classmethod
    def for_prompt(
        cls, prompt_tokens: int, *, load_s: float | None = None, stall_s: float | None = None
    ) -> WaitBounds:
        """Bounds for a prompt of ``prompt_tokens``: the load budget plus prefill at a rate
        far below any NPU's; ``load_s``/``stall_s`` override (the CLI's --load-timeout and
        --stall-timeout)."""
        load = LOAD_BUDGET_S if load_s is None else load_s
        return cls(
            first_token=load + max(0, prompt_tokens) / PREFILL_FLOOR_TOK_S,
            stall=STALL_S if stall_s is None else stall_s,
        )


@dataclass(frozen=True)
class QueryRequest:
    prompt: str  # the exact text Genie tokenizes (travels as a file, never on a command line)
    settings: SamplerSettings = field(default_factory=SamplerSettings)
    # A chat's id: the dialog (KV state) is kept on the phone after the query so the next
    # turn can continue it. None: a one-shot query that leaves nothing behind.
    dialog: str | None = None
    # Continue the dialog's context (a follow-up turn) instead of starting it fresh.
    follow_up: bool = False
    bounds: WaitBounds = field(default_factory=WaitBounds)
    # The same prompt as token ids (models/prompt_ids.py: the template's markers as control
    # ids, the user's text as text) and the tokenizer's decode for the reply's ids: an engine
    # whose Genie takes token ids sends these; any other sends ``prompt`` (neutralised text).
    prompt_ids: tuple[int, ...] | None = None
    decode: Callable[[list[int]], str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.follow_up and self.dialog is None:
            raise ValueError("a follow-up query needs the dialog it continues")
