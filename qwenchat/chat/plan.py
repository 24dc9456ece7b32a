"""Planning one turn: what to send to Genie, and whether it fits the context.

Pure functions (tokens in, plan out), tested without a phone:

* ``followup``: the dialog state saved on the phone (``--save``/``--restore``) already holds
  every earlier turn, so only the new user turn is prefilled (``render_followup``);
* ``rebuild``: the state is missing, stale (system prompt changed, a reply was cut or failed,
  the transcript was edited) or never existed: the whole transcript is rendered and a new
  state saved;
* ``continuation``: a reply stopped at max tokens. Genie closes the assistant turn itself
  before any restored query, so continuing is a rebuild with that turn left open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from qwenchat.chat.outcome import DEFAULT_CTX_SIZE, PromptMode
from qwenchat.errors import ContextOverflowError
from qwenchat.models.registry import get_model
from qwenchat.models.template import Message, render_chat, render_continuation, render_followup

if TYPE_CHECKING:
    from qwenchat.models.spec import ModelSpec


class TokenCounting(Protocol):
    def count(self, text: str) -> int: ...


@dataclass
class ChatMessage:
    role: str  # "user" | "assistant" (the system prompt is kept apart)
    content: str
    stop_reason: str | None = None  # assistant messages only
    db_id: int | None = None

    def template_message(self) -> Any:
        return Message(role=self.role, content=self.content)


def template_messages(system: str | None, messages: list[ChatMessage]) -> list[Any]:
    out = [Message(role="system", content=system)] if system is not None else []
    return out + [m.template_message() for m in messages]


def full_prompt(
    system: str | None, messages: list[ChatMessage], model: ModelSpec | None = None
) -> str:
    return render_chat(
        template_messages(system, messages), add_generation_prompt=True, model=model
    )


def continuation_prompt(
    system: str | None, messages: list[ChatMessage], model: ModelSpec | None = None
) -> str:
    return render_continuation(template_messages(system, messages), model=model)


def followup_prompt(user_text: str, model: ModelSpec | None = None) -> str:
    return render_followup(user_text, model=model)


def _restore_prefix_tokens(model: ModelSpec | None) -> int:
    if model is None:
        model = get_model()
    return model.chat.restore_prefix_tokens


@dataclass
class PhoneState:
    """What the dialog state file on the phone holds, as far as the host knows."""

    valid: bool = False
    tokens: int = 0  # context positions used by the saved state
    system: str | None = None  # the system prompt the state was built with


@dataclass(frozen=True)
class TurnPlan:
    mode: PromptMode
    prompt: str
    prompt_tokens: int  # tokens Genie will prefill (followup: + the EOS it pushes itself)
    ctx_after_prompt: int  # context used once the prompt is in
    max_tokens: int
    ctx_size: int

    @property
    def restore(self) -> bool:
        return self.mode is PromptMode.FOLLOWUP


class ContextBudgetError(ContextOverflowError):
    """The next turn plus max tokens would not fit the context."""

    def __init__(
        self, needed: int, ctx_size: int, drop_turns: int | None, *, at_least: bool = False
    ) -> None:
        self.needed = needed
        self.ctx_size = ctx_size
        self.drop_turns = drop_turns  # oldest turns to drop to fit; None: cannot fit at all
        if drop_turns:
            hint = f"Drop the {drop_turns} oldest turn(s) (the chat offers it), or /clear."
        else:
            hint = "Shorten the message or lower max_tokens (/set max_tokens=N)."
        more = "more than " if at_least else ""
        super().__init__(
            f"this turn needs {more}{needed} tokens of context (prompt + max tokens), "
            f"the model has {ctx_size}",
            hint=hint,
        )


# A token is never longer than this many characters in the vocabularies we run (the longest
# Qwen2 tokens are runs of ~80 spaces or symbols): text longer than the context times this
# cannot fit, whatever it says. Used to avoid tokenizing megabytes to learn that.
MAX_CHARS_PER_TOKEN = 256


def too_long_to_fit(prompt: str, counter: TokenCounting, budget: int) -> int | None:
    """A lower bound on ``prompt``'s tokens when it is certainly over ``budget``, else None.

    Counting a 10 MB prompt takes most of a minute; its last ``budget * 64`` characters
    alone already tell when it cannot fit (a stretch of text has at least as many tokens as
    the whole has inside that stretch, less one for the cut)."""
    window = budget * 64
    if len(prompt) <= window:
        return None
    tail = counter.count(prompt[-window:]) - 1
    return tail if tail > budget else None


def plan_turn(
    *,
    system: str | None,
    history: list[ChatMessage],
    user_text: str,
    state: PhoneState,
    state_on_phone: bool,
    counter: TokenCounting,
    max_tokens: int,
    ctx_size: int = DEFAULT_CTX_SIZE,
    model: ModelSpec | None = None,
    bos_tokens: int = 0,
) -> TurnPlan:
    """Followup when the phone's state matches the history; otherwise a rebuild.

    ``bos_tokens``: what Genie prepends to every query's text itself (1 when the config's
    bos-token is not -1).
    """
    followup_ok = model is None or model.chat.followup
    if followup_ok and state.valid and state_on_phone and state.system == system:
        prompt = followup_prompt(user_text, model)
        # Genie pushes the end of the previous turn itself before a restored query.
        tokens = counter.count(prompt) + _restore_prefix_tokens(model) + bos_tokens
        plan = TurnPlan(
            PromptMode.FOLLOWUP, prompt, tokens, state.tokens + tokens, max_tokens, ctx_size
        )
    else:
        messages = history + [ChatMessage("user", user_text)]
        prompt = full_prompt(system, messages, model)
        over = too_long_to_fit(prompt, counter, ctx_size)
        if over is not None:  # e.g. a /load-ed transcript of thousands of messages
            drop = turns_to_drop(
                system, history, user_text, counter, max_tokens, ctx_size, model, bos_tokens
            )
            raise ContextBudgetError(over + max_tokens, ctx_size, drop, at_least=True)
        tokens = counter.count(prompt) + bos_tokens
        plan = TurnPlan(PromptMode.REBUILD, prompt, tokens, tokens, max_tokens, ctx_size)
    needed = plan.ctx_after_prompt + max_tokens
    if needed > ctx_size:
        drop = turns_to_drop(
            system, history, user_text, counter, max_tokens, ctx_size, model, bos_tokens
        )
        raise ContextBudgetError(needed, ctx_size, drop)
    return plan


def split_turns(history: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Group the transcript into turns: a user message and the replies after it."""
    turns: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def turns_to_drop(
    system: str | None,
    history: list[ChatMessage],
    user_text: str,
    counter: TokenCounting,
    max_tokens: int,
    ctx_size: int = DEFAULT_CTX_SIZE,
    model: ModelSpec | None = None,
    bos_tokens: int = 0,
) -> int | None:
    """The fewest oldest turns to drop so a rebuilt prompt + max tokens fits; None if the
    new message alone does not fit."""
    turns = split_turns(history)
    budget = ctx_size - max_tokens - bos_tokens
    user = ChatMessage("user", user_text)

    def fits(drop: int) -> bool:
        kept = [m for turn in turns[drop:] for m in turn]
        prompt = full_prompt(system, kept + [user], model)
        if too_long_to_fit(prompt, counter, budget) is not None:
            return False
        return counter.count(prompt) <= budget

    if not turns or not fits(len(turns)):
        return None
    # Linear in the number of turns, and only the newest ones are tokenized: walk back from
    # the newest turn adding each one's own text until the budget is spent, which gives the
    # estimate; then the exact answer is searched next to it with whole renders, which are
    # small there (about a context's worth). Dropping more turns never makes the prompt
    # longer, so the search is a binary one between bounds that are known to (not) fit.
    spent = counter.count(user_text)
    estimate = len(turns)
    while estimate > 0:
        turn = turns[estimate - 1]
        spent += sum(counter.count(m.content) for m in turn)
        if spent > budget:
            break
        estimate -= 1
    low, high = max(1, estimate), len(turns)  # high fits
    if fits(low):
        high = low
        low = max(1, low - 1)
        if low < high and not fits(low):
            return high
        low = 1  # the estimate was short: rare; search the rest (small kept parts first)
    while low < high:
        mid = (low + high + 1) // 2 if high - low > 1 else low
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return high


__all__ = [
    "ChatMessage",
    "ContextBudgetError",
    "PhoneState",
    "TokenCounting",
    "TurnPlan",
    "continuation_prompt",
    "followup_prompt",
    "full_prompt",
    "plan_turn",
    "split_turns",
    "template_messages",
    "turns_to_drop",
]
