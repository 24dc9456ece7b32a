"""One conversation with Qwen2-7B-Instruct on the phone.

A chat session owns the transcript and decides, turn by turn, what to send to Genie:

* ``followup``: the dialog state saved on the phone (``--save``/``--restore``) already holds
  every earlier turn, so only the new user turn is prefilled (``render_followup``);
* ``rebuild``: the state is missing, stale (system prompt changed, a reply was cut, the
  transcript was edited) or never existed: the whole transcript is rendered and a new state
  saved;
* ``continuation``: a reply stopped at max tokens. Genie closes the assistant turn itself
  before any restored query, so continuing is a rebuild with that turn left open.

The planning functions are pure (tokens in, plan out) so they are tested without a phone;
``ChatSession`` composes them with an engine of ``qwenchat.runner`` (the phone), the model's
spec (template, end of turn) and the store (SQLite).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qwenchat.chat.storage import ChatStorage
from qwenchat.device.info import read_device_info
from qwenchat.errors import ContextOverflowError, GenieError, UsageError
from qwenchat.layout import DEFAULT_WORK_DIR, PhoneLayout
from qwenchat.models.registry import get_model
from qwenchat.models.template import Message, render_chat, render_continuation, render_followup
from qwenchat.models.tokens import TokenCounter
from qwenchat.runner import open_engine
from qwenchat.runner.record import Outcome
from qwenchat.runner.request import QueryRequest, SamplerSettings

if TYPE_CHECKING:
    from qwenchat.chat.storage import ChatStorage
    from qwenchat.models.spec import ModelSpec
    from qwenchat.runner.engine import Engine
    from qwenchat.runner.record import QueryRecord

DEFAULT_CTX_SIZE = 4096
# Used when neither the user nor the bundle's genie_config.json sets max-num-tokens: without a
# limit Genie generates until the context is full, and no context budget could be kept.
DEFAULT_MAX_TOKENS = 512


class TokenCounting(Protocol):
    def count(self, text: str) -> int: ...


class StopReason(StrEnum):
    EOS = "eos"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    CUT = "cut"
    ERROR = "error"


class PromptMode(StrEnum):
    FOLLOWUP = "followup"
    REBUILD = "rebuild"
    CONTINUATION = "continuation"


# --------------------------------------------------------------------------- settings

_SETTING_KEYS = ("temp", "top_k", "top_p", "seed", "max_tokens")


def validate_setting(key: str, raw: str | float | int) -> float | int:
    """One setting checked; a bad value raises UsageError with a one-line message."""
    if key not in _SETTING_KEYS:
        raise UsageError(
            f"unknown setting {key!r}", hint=f"Settings: {', '.join(_SETTING_KEYS)}."
        )
    try:
        value: float | int = float(raw) if key in ("temp", "top_p") else int(str(raw))
    except ValueError:
        kind = "a number" if key in ("temp", "top_p") else "a whole number"
        raise UsageError(f"{key} must be {kind}, not {raw!r}") from None
    if key == "temp" and not 0.0 <= value <= 5.0:
        raise UsageError(f"temp must be between 0 and 5, not {raw}")
    if key == "top_p" and not 0.0 < value <= 1.0:
        raise UsageError(f"top_p must be in (0, 1], not {raw}")
    if key == "top_k" and value < 1:
        raise UsageError(f"top_k must be at least 1, not {raw}")
    if key == "seed" and not 0 <= value < 2**32:
        raise UsageError(f"seed must be between 0 and 2^32-1, not {raw}")
    if key == "max_tokens" and not 1 <= value <= DEFAULT_CTX_SIZE:
        raise UsageError(f"max_tokens must be between 1 and {DEFAULT_CTX_SIZE}, not {raw}")
    return value


def parse_set_command(text: str) -> dict[str, float | int]:
    """``temp=0.7 top_k=40`` → {"temp": 0.7, "top_k": 40}; hyphens accepted (top-k)."""
    values: dict[str, float | int] = {}
    words = text.replace(",", " ").split()
    if not words:
        raise UsageError(
            "/set needs key=value pairs", hint="e.g. /set temp=0.7 top_k=40 max_tokens=256"
        )
    for word in words:
        if "=" not in word:
            raise UsageError(f"/set expects key=value, got {word!r}", hint="e.g. /set temp=0.7")
        key, _, raw = word.partition("=")
        key = key.strip().lower().replace("-", "_")
        values[key] = validate_setting(key, raw.strip())
    return values


# --------------------------------------------------------------------------- transcript


@dataclass
class ChatMessage:
    role: str  # "user" | "assistant" (the system prompt is kept apart)
    content: str
    stop_reason: str | None = None  # assistant messages only
    db_id: int | None = None

    def template_message(self) -> Any:

        return Message(role=self.role, content=self.content)


def decide_stop_reason(
    text: str,
    num_generated: int | None,
    max_tokens: int | None,
    stop_sequences: list[str] | tuple[str, ...] | None,
) -> StopReason:
    """Why a reply that ended normally ([END]) stopped.

    Genie does not say; the profile's generated-token count reaching max-num-tokens means the
    limit, a reply ending in a stop sequence means that, anything else is the EOS token.
    """
    if max_tokens is not None and num_generated is not None and num_generated >= max_tokens:
        return StopReason.MAX_TOKENS
    for seq in stop_sequences or ():
        if seq and text.rstrip().endswith(seq.rstrip() or seq):
            return StopReason.STOP_SEQUENCE
    return StopReason.EOS


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

    def __init__(self, needed: int, ctx_size: int, drop_turns: int | None) -> None:
        self.needed = needed
        self.ctx_size = ctx_size
        self.drop_turns = drop_turns  # oldest turns to drop to fit; None: cannot fit at all
        if drop_turns:
            hint = f"Drop the {drop_turns} oldest turn(s) (the chat offers it), or /clear."
        else:
            hint = "Shorten the message or lower max_tokens (/set max_tokens=N)."
        super().__init__(
            f"this turn needs {needed} tokens of context (prompt + max tokens), "
            f"the model has {ctx_size}",
            hint=hint,
        )


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
    for drop in range(1, len(turns) + 1):
        kept = [m for turn in turns[drop:] for m in turn]
        prompt = full_prompt(system, kept + [ChatMessage("user", user_text)], model)
        if counter.count(prompt) + bos_tokens + max_tokens <= ctx_size:
            return drop
    return None


# --------------------------------------------------------------------------- the session


@dataclass
class ReplyFigures:
    """Every figure of one reply, each tagged by where it comes from."""

    # From Genie's own profiler (--profile JSON); None when no profile was written.
    genie_init_us: float | None = None
    genie_prompt_tokens: int | None = None
    genie_prefill_rate: float | None = None
    genie_ttft_us: float | None = None
    genie_generated_tokens: int | None = None
    genie_decode_rate: float | None = None
    genie_decode_time_us: float | None = None
    # From the host's clock.
    host_first_token_s: float | None = None
    host_total_s: float | None = None
    # Host bookkeeping.
    counted_prompt_tokens: int | None = None
    ctx_used: int | None = None
    ctx_size: int = DEFAULT_CTX_SIZE
    simulated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "genie": {
                "source": "genie --profile",
                "init_time_us": self.genie_init_us,
                "num_prompt_tokens": self.genie_prompt_tokens,
                "prompt_processing_rate_tok_s": self.genie_prefill_rate,
                "time_to_first_token_us": self.genie_ttft_us,
                "num_generated_tokens": self.genie_generated_tokens,
                "token_generation_rate_tok_s": self.genie_decode_rate,
                "token_generation_time_us": self.genie_decode_time_us,
            },
            "host": {
                "source": "host clock",
                "first_token_s": self.host_first_token_s,
                "total_s": self.host_total_s,
            },
            "context": {
                "source": "host tokenizer + genie profile",
                "prompt_tokens_counted": self.counted_prompt_tokens,
                "used": self.ctx_used,
                "size": self.ctx_size,
            },
            "simulated": self.simulated,
        }


@dataclass
class ReplyResult:
    text: str
    stop: StopReason
    mode: PromptMode
    figures: ReplyFigures
    error: str | None = None
    error_hint: str | None = None
    overflow: bool = False  # Genie reported a context overflow (mapped to the drop offer)

    @property
    def ok(self) -> bool:
        return self.stop not in (StopReason.ERROR,)


@dataclass
class SessionInfo:
    serial: str = "?"
    model: str = "?"
    soc: str = "?"
    simulated: bool = False


@dataclass
class ChatSession:
    """The transcript, the state on the phone, and the turn-by-turn decisions."""

    engine: Engine
    counter: TokenCounting
    model: ModelSpec | None = None  # None: the default model
    storage: ChatStorage | None = None
    system: str | None = None
    settings: SamplerSettings = field(default_factory=SamplerSettings)
    info: SessionInfo = field(default_factory=SessionInfo)
    session_id: str = field(default_factory=lambda: _new_session_id())
    messages: list[ChatMessage] = field(default_factory=list)
    state: PhoneState = field(default_factory=PhoneState)
    last: ReplyResult | None = None
    turns_done: int = 0
    # False for a one-shot question: nothing is kept on the phone after the reply.
    keep_state: bool = True
    _conversation_saved: bool = False
    _cancel: threading.Event = field(default_factory=threading.Event)

    # ----- derived
    @property
    def ctx_size(self) -> int:
        return self.engine.bundle.config.context_size or DEFAULT_CTX_SIZE

    @property
    def max_tokens(self) -> int:
        bundle_max = self.engine.bundle.config.max_num_tokens
        return self.settings.max_tokens or bundle_max or DEFAULT_MAX_TOKENS

    @property
    def bos_tokens(self) -> int:
        """Tokens Genie prepends to every query (the config's bos-token, unless -1)."""
        return 0 if self.engine.bundle.config.bos_token == -1 else 1

    # ----- changes the user makes
    def set_system(self, text: str | None) -> None:
        text = text or None
        if text != self.system:
            self.system = text
            self.state.valid = False  # the state's prefix changed: rebuild next turn
        self._save_conversation()

    def update_settings(self, **values: Any) -> None:
        # Sampler and max tokens live in the per-session genie config, not in the KV state:
        # changing them never forces a rebuild.
        self.settings = self.settings.updated(**values)
        self._save_conversation()

    def clear(self) -> None:
        """A new conversation (new id, new state file); settings and system prompt stay."""
        self.engine.forget(self.session_id)
        self.session_id = _new_session_id()
        self.messages = []
        self.state = PhoneState()
        self.last = None
        self._conversation_saved = False

    def drop_oldest(self, turns: int) -> None:
        groups = split_turns(self.messages)
        dropped = [m for group in groups[:turns] for m in group]
        self.messages = [m for group in groups[turns:] for m in group]
        if self.storage is not None:
            self.storage.mark_dropped([m.db_id for m in dropped if m.db_id is not None])
        self.state.valid = False

    def load_transcript(self, data: dict[str, Any]) -> None:
        """From a /save file: replaces the transcript; the phone state is rebuilt next turn."""
        self.clear()
        self.system = data.get("system")
        settings = {k: v for k, v in (data.get("settings") or {}).items() if v is not None}
        self.settings = SamplerSettings(**{k: validate_setting(k, v) for k, v in settings.items()})
        for item in data.get("messages", []):
            if item.get("role") not in ("user", "assistant"):
                raise UsageError(f"unexpected role {item.get('role')!r} in the transcript file")
            message = ChatMessage(item["role"], str(item["content"]), item.get("stop_reason"))
            self.messages.append(message)
            self._store_message(message)

    def transcript(self) -> dict[str, Any]:
        return {
            "format": "qwenchat-transcript/1",
            "session_id": self.session_id,
            "system": self.system,
            "settings": self.settings.as_dict(),
            "device": asdict(self.info),
            "messages": [
                {"role": m.role, "content": m.content, "stop_reason": m.stop_reason}
                for m in self.messages
            ],
        }

    def save_transcript(self, path: Path) -> None:
        path.write_text(json.dumps(self.transcript(), indent=2, ensure_ascii=False) + "\n")

    # ----- turns
    def cancel(self) -> None:
        """Stop the reply being generated (safe from another thread or a signal handler)."""
        self._cancel.set()
        self.engine.cancel()

    def send(self, user_text: str, on_text: Callable[[str], None] | None = None) -> ReplyResult:
        """One user turn: plan, send, stream, record. Raises ContextBudgetError before
        anything is sent when the turn would not fit."""
        if not user_text.strip():
            raise UsageError("empty message")
        state_on_phone = (
            self.keep_state and self.state.valid and self.engine.has_dialog(self.session_id)
        )
        plan = plan_turn(
            system=self.system,
            history=self.messages,
            user_text=user_text,
            state=self.state,
            state_on_phone=state_on_phone,
            counter=self.counter,
            max_tokens=self.max_tokens,
            ctx_size=self.ctx_size,
            model=self.model,
            bos_tokens=self.bos_tokens,
        )
        user = ChatMessage("user", user_text)
        self.messages.append(user)
        self._store_message(user)
        result = self._run(plan, on_text, new_message=True)
        if (
            result.stop is StopReason.ERROR
            and plan.mode is PromptMode.FOLLOWUP
            and not result.text
            and not result.overflow
        ):
            # A lost or unreadable state (restore failed): rebuild once, transparently.
            self.state.valid = False
            plan = self._rebuild_plan(continuation=False)
            result = self._run(plan, on_text, new_message=True)
        if result.overflow:
            # Our count said it fits, Genie disagreed: never show Genie's raw overflow, make
            # the same offer as the budget check (the failed turn leaves the transcript).
            self._retract_turn()
            needed = max(plan.ctx_after_prompt + plan.max_tokens, plan.ctx_size + 1)
            drop = turns_to_drop(
                self.system, self.messages, user_text, self.counter, plan.max_tokens,
                plan.ctx_size, self.model, self.bos_tokens,
            )
            raise ContextBudgetError(needed, plan.ctx_size, drop)
        return result

    def _retract_turn(self) -> None:
        while self.messages:
            message = self.messages.pop()
            if self.storage is not None and message.db_id is not None:
                self.storage.mark_dropped([message.db_id])
            if message.role == "user":
                break

    def regenerate(self, on_text: Callable[[str], None] | None = None) -> ReplyResult:
        """Replace the last reply: the state holds it, so this is always a rebuild."""
        if not self.messages or self.messages[-1].role != "assistant":
            raise UsageError("nothing to regenerate yet")
        old = self.messages.pop()
        if self.storage is not None and old.db_id is not None:
            self.storage.mark_dropped([old.db_id])
        self.state.valid = False
        return self._run(self._rebuild_plan(continuation=False), on_text, new_message=True)

    def continue_reply(self, on_text: Callable[[str], None] | None = None) -> ReplyResult:
        """Continue a reply cut at max tokens: a rebuild with the assistant turn left open
        (Genie would close the turn with <|im_end|> before any restored query)."""
        if not self.messages or self.messages[-1].role != "assistant":
            raise UsageError("no reply to continue")
        self.state.valid = False
        return self._run(self._rebuild_plan(continuation=True), on_text, new_message=False)

    # ----- internals
    def _rebuild_plan(self, *, continuation: bool) -> TurnPlan:
        if continuation:
            prompt = continuation_prompt(self.system, self.messages, self.model)
            mode = PromptMode.CONTINUATION
        else:
            prompt = full_prompt(self.system, self.messages, self.model)
            mode = PromptMode.REBUILD
        tokens = self.counter.count(prompt) + self.bos_tokens
        needed = tokens + self.max_tokens
        if needed > self.ctx_size:
            history, last_user = self.messages[:-1], self.messages[-1]
            if continuation or last_user.role != "user":
                drop = None
            else:
                drop = turns_to_drop(
                    self.system, history, last_user.content, self.counter, self.max_tokens,
                    self.ctx_size, self.model, self.bos_tokens,
                )
            raise ContextBudgetError(needed, self.ctx_size, drop)
        return TurnPlan(mode, prompt, tokens, tokens, self.max_tokens, self.ctx_size)

    def _run(
        self, plan: TurnPlan, on_text: Callable[[str], None] | None, *, new_message: bool
    ) -> ReplyResult:
        self._cancel.clear()
        if new_message:
            reply = ChatMessage("assistant", "")
            self.messages.append(reply)
        else:
            reply = self.messages[-1]
        prefix = reply.content
        streamed: list[str] = []
        live = _LiveWriter(self.storage, reply)

        def _on_text(text: str) -> None:
            streamed.append(text)
            reply.content = prefix + "".join(streamed)
            if reply.db_id is None and self.storage is not None:
                self._store_message(reply)
            live.maybe_flush()
            if on_text is not None:
                on_text(text)


        request = QueryRequest(
            prompt=plan.prompt,
            settings=self.settings.updated(max_tokens=plan.max_tokens),
            dialog=self.session_id if self.keep_state else None,
            follow_up=plan.restore,
        )
        record = self.engine.query(request, _on_text)
        text = "".join(streamed)
        reply.content = prefix + text
        figures = self._figures(plan, record)
        stop, error, hint = self._stop_reason(record, text, figures)
        reply.stop_reason = stop.value
        if stop in (StopReason.CUT, StopReason.ERROR):
            # A killed or failed process saves no state: the transcript (with the cut
            # reply) is the truth and the next turn rebuilds from it.
            self.state.valid = False
        else:
            self.state = PhoneState(valid=True, tokens=figures.ctx_used or 0, system=self.system)
        if reply.db_id is None:
            self._store_message(reply)
        else:
            live.flush()
        overflow = record.outcome is Outcome.CONTEXT_EXCEEDED
        result = ReplyResult(reply.content, stop, plan.mode, figures, error, hint, overflow)
        if self.storage is not None and reply.db_id is not None:
            self.storage.record_reply(self.session_id, reply.db_id, result, self.settings)
        if stop is StopReason.ERROR and not text and new_message:
            self._drop_last_error_reply(keep_record=True)
        self.last = result
        self.turns_done += 1
        return result

    def _drop_last_error_reply(self, keep_record: bool = False) -> None:
        """An error reply with no text is not part of the conversation (it stays stored
        with its error when ``keep_record``)."""
        if self.messages and self.messages[-1].role == "assistant" and not self.messages[-1].content:
            message = self.messages.pop()
            if not keep_record and self.storage is not None and message.db_id is not None:
                self.storage.mark_dropped([message.db_id])

    def _figures(self, plan: TurnPlan, record: QueryRecord) -> ReplyFigures:
        p = record.profile
        figures = ReplyFigures(
            host_first_token_s=record.host_first_token_s,
            host_total_s=record.host_total_s,
            counted_prompt_tokens=plan.prompt_tokens,
            ctx_size=plan.ctx_size,
            simulated=self.info.simulated,
        )
        if p is not None:
            figures.genie_init_us = p.init_time_us
            figures.genie_prompt_tokens = p.num_prompt_tokens
            figures.genie_prefill_rate = p.prompt_processing_rate
            figures.genie_ttft_us = p.time_to_first_token_us
            figures.genie_generated_tokens = p.num_generated_tokens
            figures.genie_decode_rate = p.token_generation_rate
            figures.genie_decode_time_us = p.token_generation_time_us
        before = self.state.tokens if plan.mode is PromptMode.FOLLOWUP else 0
        prompt_tokens = (
            p.num_prompt_tokens if p is not None and p.num_prompt_tokens else plan.prompt_tokens
        )
        generated = (
            p.num_generated_tokens
            if p is not None and p.num_generated_tokens is not None
            else self.counter.count(record.text) if record.text else 0
        )
        figures.ctx_used = before + prompt_tokens + generated
        return figures

    def _stop_reason(
        self, record: QueryRecord, text: str, figures: ReplyFigures
    ) -> tuple[StopReason, str | None, str | None]:
        if record.outcome is Outcome.CUT:
            return StopReason.CUT, None, None
        if record.outcome is Outcome.CONTEXT_EXCEEDED:
            self.state.valid = False
            return (
                StopReason.ERROR,
                "the conversation no longer fits the model's context",
                "Drop the oldest turns or /clear.",
            )
        if not record.ok:
            return StopReason.ERROR, record.message or "genie-t2t-run failed", record.hint
        stop = decide_stop_reason(
            text,
            figures.genie_generated_tokens,
            self.max_tokens,
            self.engine.bundle.config.stop_sequence,
        )
        return stop, None, None

    def _save_conversation(self) -> None:
        if self.storage is None or not self.messages:
            return
        self.storage.save_conversation(self)
        self._conversation_saved = True

    def _store_message(self, message: ChatMessage) -> None:
        if self.storage is None:
            return
        if not self._conversation_saved:
            self.storage.save_conversation(self)
            self._conversation_saved = True
        message.db_id = self.storage.add_message(self.session_id, message)


def open_chat_session(
    device: Any,
    *,
    work_dir: str | None = None,
    system: str | None = None,
    settings: SamplerSettings | None = None,
    store: Any = None,
    model: ModelSpec | None = None,
    keep_state: bool = True,
) -> ChatSession:
    """A session on an open device: reads the bundle config and tokenizer from the phone,
    the device identity (serial, model, simulated) and opens the chat tables."""

    layout = PhoneLayout(work_dir or DEFAULT_WORK_DIR)
    engine = open_engine(device, layout)
    counter = TokenCounter(engine.bundle.tokenizer_file())
    device_info = read_device_info(device, layout.work_dir)
    info = SessionInfo(
        serial=str(getattr(device_info, "serial", device.serial)),
        model=str(getattr(device_info, "model", "?")),
        soc=str(getattr(device_info, "soc", "?")),
        simulated=bool(getattr(device_info, "simulated", False)),
    )
    storage = ChatStorage(store) if store is not None else None
    session = ChatSession(
        engine=engine,
        counter=counter,
        model=model,
        keep_state=keep_state,
        storage=storage,
        system=system or None,
        settings=settings or SamplerSettings(),
        info=info,
    )
    return session


class _LiveWriter:
    """Keeps the stored reply close to what is on screen without a write per token: a host
    crash loses at most ``interval`` seconds of a reply, never a whole message."""

    def __init__(self, storage: ChatStorage | None, message: ChatMessage, interval: float = 0.5):
        self.storage = storage
        self.message = message
        self.interval = interval
        self._last = time.monotonic()

    def maybe_flush(self) -> None:
        if self.storage is not None and time.monotonic() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if self.storage is not None and self.message.db_id is not None:
            self.storage.update_message(self.message)


def _new_session_id() -> str:
    import uuid

    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


__all__ = [
    "ChatMessage",
    "ChatSession",
    "ContextBudgetError",
    "GenieError",
    "PhoneState",
    "PromptMode",
    "ReplyFigures",
    "ReplyResult",
    "SamplerSettings",
    "SessionInfo",
    "StopReason",
    "TurnPlan",
    "decide_stop_reason",
    "parse_set_command",
    "plan_turn",
    "turns_to_drop",
]
