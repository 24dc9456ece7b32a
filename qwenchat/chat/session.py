"""One conversation with a Genie LLM on the phone.

A chat session owns the transcript and decides, turn by turn, what to send to Genie
(``plan.py``: follow-up, rebuild or continuation), runs it through an engine of
``qwenchat.runner`` and records what happened (``outcome.py``) in the store as it happens.

What holds whatever stops a reply (the phone vanishing, a wait bound, Ctrl-C, SIGTERM,
an exception in the host):

* everything printed is in the transcript and the store, with its own stop reason and a
  figures row;
* the dialog state on the phone is trusted only after a reply that finished: any other
  turn makes the next one rebuild from the transcript;
* every wait on the phone has a bound (``WaitBounds.for_prompt``, overridable);
* a chat removes its dialog state from the phone when it ends (``end()``); a one-shot
  question (``keep_state=False``) saves none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.chat.outcome import (
    DEFAULT_CTX_SIZE,
    UNFINISHED,
    PromptMode,
    ReplyFigures,
    ReplyResult,
    StopReason,
    decide_stop_reason,
    stop_from_record,
)
from qwenchat.chat.plan import (
    ChatMessage,
    ContextBudgetError,
    PhoneState,
    TokenCounting,
    TurnPlan,
    continuation_prompt,
    followup_prompt,
    full_prompt,
    plan_turn,
    split_turns,
    turns_to_drop,
)
from qwenchat.chat.storage import ChatStorage
from qwenchat.chat.user_input import (
    check_message,
    parse_set_command,
    validate_setting,
)
from qwenchat.device.info import read_device_info
from qwenchat.errors import DeviceError, DeviceLostError, GenieError, QwenchatError, UsageError
from qwenchat.layout import DEFAULT_WORK_DIR, PhoneLayout
from qwenchat.models.registry import get_model
from qwenchat.models.tokens import TokenCounter
from qwenchat.runner import open_engine
from qwenchat.runner.record import Outcome
from qwenchat.runner.request import QueryRequest, SamplerSettings, WaitBounds
from qwenchat.shellwords import quote

if TYPE_CHECKING:
    from qwenchat.chat.transcript import Transcript
    from qwenchat.models.spec import ModelSpec
    from qwenchat.runner.engine import Engine
    from qwenchat.runner.record import QueryRecord

# Used when neither the user nor the bundle's genie_config.json sets max-num-tokens: without a
# limit Genie generates until the context is full, and no context budget could be kept.
DEFAULT_MAX_TOKENS = 512


@dataclass
class SessionInfo:
    serial: str = "?"
    model: str = "?"  # the phone's model name (ro.product.model), not the LLM
    soc: str = "?"
    simulated: bool = False


@dataclass
class ChatSession:
    """The transcript, the state on the phone, and the turn-by-turn decisions."""

    engine: Engine
    counter: TokenCounting
    model: ModelSpec | None = None  # the LLM (None: the default model)
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
    # --load-timeout / --stall-timeout (seconds); None: derived from the prompt.
    load_timeout: float | None = None
    stall_timeout: float | None = None
    # Set when the phone vanished: nothing more is sent until reconnect().
    lost: bool = False
    # --engine: how a phone found again is driven (auto, session, process).
    engine_kind: str = "process"
    # Who held the conversation: "chat" (a person at `qwenchat run`) or "served" (a client of
    # `qwenchat serve`); history and export show it.
    origin: str = "chat"
    _conversation_saved: bool = False
    _cancel: threading.Event = field(default_factory=threading.Event)
    # Dialog states left on a phone that vanished: removed when it is back.
    _orphans: list[str] = field(default_factory=list)
    # The query under way, for a watcher that says what the chat waits for (chat/waiting.py):
    # when it started (monotonic) and the first-token bound in seconds; None when idle.
    waiting_since: float | None = None
    waiting_bound: float | None = None
    # The phone's manifest.json (inode, mtime, size) when this chat's engine opened: a push
    # replaces it; the next turn then notices and says so (``notices``).
    _bundle_mark: str | None = None
    notices: list[str] = field(default_factory=list)  # said once by the chat, then cleared

    # ----- derived
    @property
    def ctx_size(self) -> int:
        return self.engine.bundle.config.context_size or DEFAULT_CTX_SIZE

    @property
    def max_tokens(self) -> int:
        bundle_max = self.engine.bundle.config.max_num_tokens
        wanted = self.settings.max_tokens or bundle_max or DEFAULT_MAX_TOKENS
        return min(wanted, self.ctx_size)

    @property
    def bos_tokens(self) -> int:
        """Tokens Genie prepends to every query (the config's bos-token, unless -1)."""
        return 0 if self.engine.bundle.config.bos_token == -1 else 1

    @property
    def model_name(self) -> str:
        return (self.model or get_model()).name

    # ----- changes the user makes
    def set_system(self, text: str | None) -> None:
        text = text or None
        if text is not None:
            check_message(text, "the system prompt")
        if text != self.system:
            self.system = text
            self.state.valid = False  # the state's prefix changed: rebuild next turn
        self._save_conversation()

    def update_settings(self, **values: Any) -> None:
        # Sampler and max tokens live in the per-session genie config, not in the KV state:
        # with the per-turn engine changing them never forces a rebuild.
        for key, value in values.items():
            if value is not None:  # None: back to the bundle's genie_config.json value
                validate_setting(key, value, ctx_size=self.ctx_size)
        self.settings = self.settings.updated(**values)
        if not self.engine.sampler_per_query and set(values) - {"max_tokens"}:
            # An older genie-app's sampler is in its dialog's config: a new dialog (empty) is
            # made for the next turn, so that turn sends the whole conversation. (A newer one
            # applies it to the live dialog: `sampler applyConfig`, the context kept.)
            self.state.valid = False
        self._save_conversation()

    def parse_set(self, text: str) -> dict[str, float | int]:
        """``/set`` arguments, checked against this phone's context size."""
        return parse_set_command(text, ctx_size=self.ctx_size)

    def clear(self) -> None:
        """A new conversation (new id, new state file); settings and system prompt stay."""
        self._forget_dialog()
        self.session_id = _new_session_id()
        self.messages = []
        self.state = PhoneState()
        self.last = None
        self._deferred: Any = None  # this turn's BoundFirstCounter, if any
        self._conversation_saved = False

    def drop_oldest(self, turns: int) -> None:
        groups = split_turns(self.messages)
        dropped = [m for group in groups[:turns] for m in group]
        self.messages = [m for group in groups[turns:] for m in group]
        if self.storage is not None:
            self.storage.mark_dropped([m.db_id for m in dropped if m.db_id is not None])
        self.state.valid = False

    def load_transcript(self, transcript: Transcript) -> None:
        """A transcript checked by ``chat.transcript``: replaces this one; the phone state is
        rebuilt next turn."""
        self.clear()
        self.system = transcript.system
        self.settings = transcript.settings
        for message in transcript.messages:
            copy = ChatMessage(message.role, message.content, message.stop_reason)
            self.messages.append(copy)
            self._store_message(copy)

    def transcript(self) -> dict[str, Any]:
        from qwenchat.chat.transcript import FORMAT

        return {
            "format": FORMAT,
            "session_id": self.session_id,
            "model": self.model_name,
            "system": self.system,
            "settings": self.settings.as_dict(),
            "device": asdict(self.info),
            "messages": [
                {"role": m.role, "content": m.content, "stop_reason": m.stop_reason}
                for m in self.messages
            ],
        }

    def save_transcript(self, path: Path) -> None:
        from qwenchat.chat.transcript import write_transcript

        write_transcript(path, self.transcript())

    # ----- the phone
    def end(self) -> None:
        """The chat is over: remove its dialog state from the phone (it holds the KV cache:
        large) and end the engine's process there (a live session's genie-app). Never
        raises: the chat ends whatever the phone says."""
        try:
            self._forget_dialog()
            for dialog in list(self._orphans):
                if not self.lost:
                    self.engine.forget(dialog)
                    self._orphans.remove(dialog)
        except QwenchatError:
            pass
        finally:
            try:
                self.engine.close()
            except QwenchatError:
                pass

    def reconnect(self, device: Any) -> None:
        """Continue on ``device`` (the same phone, back after it vanished): the engine is
        opened again and the next turn rebuilds the conversation from the transcript."""
        layout = self.engine.layout
        try:
            self.engine.close()  # the old phone connection's session, if it still runs
        except QwenchatError:
            pass
        engine = open_engine(device, layout, kind=self.engine_kind)
        try:
            self._adopt(engine, device)
        except BaseException:
            _close_quietly(engine)
            raise

    def _adopt(self, engine: Engine, device: Any) -> None:
        layout = engine.layout
        engine.bundle.require_model(self.model)
        info = read_device_info(device, layout.work_dir)
        if self.info.serial not in ("?", info.serial):
            raise DeviceError(
                f"another phone answered ({info.serial}); this chat ran on {self.info.serial}",
                hint="Reconnect that phone, or end the chat (Ctrl-D) and start one here.",
            )
        tokenizer = engine.bundle.tokenizer_file()
        if isinstance(self.counter, TokenCounter) and self.counter.path != tokenizer:
            self.counter = TokenCounter(tokenizer)  # the bundle was pushed again meanwhile
        self.engine = engine
        self.state = PhoneState()
        self.lost = False
        for dialog in list(self._orphans):
            try:
                engine.forget(dialog)
                self._orphans.remove(dialog)
            except QwenchatError:
                break

    def _forget_dialog(self) -> None:
        if not self.keep_state:
            return
        if self.lost:
            self._orphans.append(self.session_id)
            return
        try:
            self.engine.forget(self.session_id)
        except DeviceError:
            self._orphans.append(self.session_id)

    # ----- turns
    def cancel(self) -> None:
        """Stop the reply being generated (safe from another thread or a signal handler)."""
        self._cancel.set()
        self.engine.cancel()

    def send(
        self,
        user_text: str,
        on_text: Callable[[str], None] | None = None,
        *,
        entered_at: float | None = None,
    ) -> ReplyResult:
        """One user turn: plan, send, stream, record. Raises ContextBudgetError before
        anything is sent when the turn would not fit, DeviceLostError when the phone is
        known to be gone (nothing is stored then).

        ``entered_at``: host ``time.monotonic()`` when the user pressed Enter (default: now);
        the figures count from it.
        """
        entered = time.monotonic() if entered_at is None else entered_at
        self._cancel.clear()
        check_message(user_text)
        self._require_phone()
        try:
            self._follow_bundle()
            state_on_phone = (
                self.keep_state and self.state.valid and self.engine.has_dialog(self.session_id)
            )
        except DeviceError as exc:
            self._mark_lost()
            raise DeviceLostError(f"the phone is gone ({exc.message})") from exc
        plan = plan_turn(
            system=self.system,
            history=self.messages,
            user_text=user_text,
            state=self.state,
            state_on_phone=state_on_phone,
            counter=self._turn_counter(),
            max_tokens=self.max_tokens,
            ctx_size=self.ctx_size,
            model=self.model,
            bos_tokens=self.bos_tokens,
        )
        user = ChatMessage("user", user_text)
        self.messages.append(user)
        self._store_message(user)
        result = self._run(plan, on_text, new_message=True, entered=entered)
        if (
            result.stop is StopReason.FAILED
            and plan.mode is PromptMode.FOLLOWUP
            and not result.text
            and not result.overflow
        ):
            # A lost or unreadable state (restore failed): rebuild once, transparently.
            plan = self._rebuild_plan(continuation=False)
            result = self._run(plan, on_text, new_message=True, entered=entered)
        if result.overflow and not result.text:
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

    def regenerate(
        self, on_text: Callable[[str], None] | None = None, *, entered_at: float | None = None
    ) -> ReplyResult:
        """Replace the last reply: the state holds it, so this is always a rebuild."""
        entered = time.monotonic() if entered_at is None else entered_at
        self._cancel.clear()
        if not self.messages or self.messages[-1].role != "assistant":
            raise UsageError("nothing to regenerate yet")
        self._require_phone()
        plan = self._rebuild_plan(continuation=False, drop_last_reply=True)
        old = self.messages.pop()
        if self.storage is not None and old.db_id is not None:
            self.storage.mark_dropped([old.db_id])
        self.state.valid = False
        return self._run(plan, on_text, new_message=True, entered=entered)

    def continue_reply(
        self, on_text: Callable[[str], None] | None = None, *, entered_at: float | None = None
    ) -> ReplyResult:
        """Continue a reply cut at max tokens: a rebuild with the assistant turn left open
        (Genie would close the turn with <|im_end|> before any restored query)."""
        entered = time.monotonic() if entered_at is None else entered_at
        self._cancel.clear()
        if not self.messages or self.messages[-1].role != "assistant":
            raise UsageError("no reply to continue")
        if not self.messages[-1].content:
            raise UsageError("the last reply is empty: nothing to continue", hint="Use /regen.")
        self._require_phone()
        # The state stays trusted if the plan is refused (nothing ran): _run distrusts it.
        plan = self._rebuild_plan(continuation=True)
        return self._run(plan, on_text, new_message=False, entered=entered)

    # ----- internals
    def _read_bundle_mark(self) -> str:
        path = quote(self.engine.layout.manifest_path)
        result = self.engine.device.shell(f"stat -c '%i %Y %s' {path} 2>/dev/null; true",
                                          timeout=30)  # fmt: skip
        return result.text.strip()

    def _follow_bundle(self) -> None:
        """A push during the chat replaced the bundle: genie-app (or the next genie-t2t-run)
        must not answer from the old model while the chat says nothing. The engine is opened
        again on the new bundle (as after a reconnect) and the chat says so."""
        mark = self._read_bundle_mark()
        if self._bundle_mark is None or mark == self._bundle_mark:
            self._bundle_mark = mark
            return
        self.reconnect(self.engine.device)
        self._bundle_mark = self._read_bundle_mark()
        self.notices.append(
            "the bundle on the phone changed during this chat (a push): this turn runs on the "
            "new one (a model load) and sends the whole conversation again"
        )

    def _require_phone(self) -> None:
        if self.lost:
            raise DeviceLostError(
                "the phone is gone",
                hint="Reconnect it; the chat reconnects on the next message.",
            )

    def _mark_lost(self) -> None:
        self.lost = True
        self.state.valid = False

    def _retract_turn(self) -> None:
        while self.messages:
            message = self.messages.pop()
            if self.storage is not None and message.db_id is not None:
                self.storage.mark_dropped([message.db_id])
            if message.role == "user":
                break

    def _rebuild_plan(self, *, continuation: bool, drop_last_reply: bool = False) -> TurnPlan:
        messages = self.messages[:-1] if drop_last_reply else self.messages
        if continuation:
            prompt = continuation_prompt(self.system, messages, self.model)
            mode = PromptMode.CONTINUATION
        else:
            prompt = full_prompt(self.system, messages, self.model)
            mode = PromptMode.REBUILD
        tokens = self.counter.count(prompt) + self.bos_tokens
        needed = tokens + self.max_tokens
        if needed > self.ctx_size:
            history, last_user = messages[:-1], messages[-1]
            if continuation or last_user.role != "user":
                drop = None
            else:
                drop = turns_to_drop(
                    self.system, history, last_user.content, self.counter, self.max_tokens,
                    self.ctx_size, self.model, self.bos_tokens,
                )
            raise ContextBudgetError(needed, self.ctx_size, drop)
        return TurnPlan(mode, prompt, tokens, tokens, self.max_tokens, self.ctx_size)

    def _turn_counter(self) -> Any:
        """The counter this turn is planned with: while the tokenizer is not loaded yet (a
        one-shot question), a bound that lets Genie start first (see chat.deferred_count).
        Not with an explicit --load-timeout: the first-token bound adds the prompt's
        prefill to it, and the user asked for that sum tight (the default budget is
        generous enough that the bound's extra allowance does not matter)."""
        self._deferred = None
        if (
            isinstance(self.counter, TokenCounter)
            and not self.counter.loaded
            and self.load_timeout is None
        ):
            from qwenchat.chat.deferred_count import BoundFirstCounter

            budget = self.ctx_size - self.max_tokens - self.bos_tokens
            self._deferred = BoundFirstCounter(self.counter, budget)
            return self._deferred
        return self.counter

    def _run(
        self,
        plan: TurnPlan,
        on_text: Callable[[str], None] | None,
        *,
        new_message: bool,
        entered: float,
    ) -> ReplyResult:
        if new_message:
            reply = ChatMessage("assistant", "")
            self.messages.append(reply)
        else:
            reply = self.messages[-1]
        prefix = reply.content
        streamed: list[str] = []
        live = _LiveWriter(self.storage, reply)
        screen = _Screen(on_text)
        # Whatever happens below, the state on the phone is trusted again only after a reply
        # that finished: a killed, failed or vanished process may have saved nothing, or a
        # state without this turn.
        self.state.valid = False

        def _on_text(text: str) -> None:
            streamed.append(text)
            reply.content += text
            if reply.db_id is None and self.storage is not None:
                self._store_message(reply)
            live.maybe_flush()
            screen.write(text)
            if self._cancel.is_set():
                # A stop that came before the phone's process existed: say it again now.
                self.engine.cancel()

        request = QueryRequest(
            prompt=plan.prompt,
            settings=self.settings.updated(max_tokens=plan.max_tokens),
            dialog=self.session_id if self.keep_state else None,
            follow_up=plan.restore,
            bounds=WaitBounds.for_prompt(
                plan.prompt_tokens, load_s=self.load_timeout, stall_s=self.stall_timeout
            ),
            **self._token_ids(plan.prompt),
        )
        record: QueryRecord | None = None
        started = time.monotonic()
        self.waiting_since, self.waiting_bound = started, request.bounds.first_token
        deferred, self._deferred = self._deferred, None
        if deferred is not None and plan.prompt in deferred.estimated:
            deferred.load_after()  # counted exactly while Genie loads
        else:
            deferred = None
        try:
            if not self._cancel.is_set():  # stopped before it started: nothing to run
                record = self.engine.query(request, _on_text)
        except BaseException:
            self.waiting_since = None
            # Not a result but an exception (KeyboardInterrupt where no handler is
            # installed, a bug): what was printed is stored as a cut reply, then it goes on.
            reply.content = prefix + "".join(streamed)
            try:
                self._finish(reply, plan, None, StopReason.CUT, entered, started, new_message)
            except Exception:  # noqa: BLE001 - the original exception is the one to report
                pass
            raise
        self.waiting_since = None
        reply.content = prefix + "".join(streamed)
        if deferred is not None:
            plan = deferred.exact_plan(plan)
        if record is None:
            return self._finish(reply, plan, None, StopReason.CUT, entered, started, new_message)
        return self._finish(reply, plan, record, None, entered, started, new_message)

    def _token_ids(self, prompt: str) -> dict[str, Any]:
        """When the user's text held control markers (sent neutralised, user_text.py): the
        prompt as token ids too, so an engine whose Genie takes ids sends the text exactly
        (models/prompt_ids.py). Without markers the ids would equal the text's: not sent."""
        from qwenchat.models.user_text import OPEN_MARK

        counter = self.counter
        if OPEN_MARK not in prompt or not isinstance(counter, TokenCounter):
            return {}
        from qwenchat.models.prompt_ids import sent_text_ids

        return {"prompt_ids": tuple(sent_text_ids(prompt, counter, self.model)),
                "decode": counter.decode}

    def _finish(
        self,
        reply: ChatMessage,
        plan: TurnPlan,
        record: QueryRecord | None,
        stop: StopReason | None,
        entered: float,
        started: float,
        new_message: bool,
    ) -> ReplyResult:
        text = record.text if record is not None else ""
        figures = self._figures(plan, record, entered, started)
        error = hint = None
        if record is not None:
            stop, error, hint = stop_from_record(
                record,
                text,
                figures,
                max_tokens=self.max_tokens,
                stop_sequences=self.engine.bundle.config.stop_sequence,
            )
            if record.outcome is Outcome.DEVICE_LOST:
                self._mark_lost()
        assert stop is not None
        reply.stop_reason = stop.value
        if record is not None and record.outcome is Outcome.FINISHED:
            self.state = PhoneState(valid=True, tokens=figures.ctx_used or 0, system=self.system)
        overflow = record is not None and record.outcome is Outcome.CONTEXT_EXCEEDED
        result = ReplyResult(reply.content, stop, plan.mode, figures, error, hint, overflow)
        if self.storage is not None:
            if reply.db_id is None:
                self._store_message(reply)
            self.storage.record_reply(self.session_id, reply.db_id, result, self.settings)
        if stop in UNFINISHED and new_message and not reply.content:
            # An empty reply is not part of the conversation (it stays stored, with its
            # stop reason and figures, for `history`).
            self._drop_empty_reply()
        self.last = result
        self.turns_done += 1
        return result

    def _drop_empty_reply(self) -> None:
        if self.messages and self.messages[-1].role == "assistant" and not self.messages[-1].content:
            self.messages.pop()

    def _figures(
        self, plan: TurnPlan, record: QueryRecord | None, entered: float, started: float
    ) -> ReplyFigures:
        figures = ReplyFigures(
            host_prepare_s=max(0.0, started - entered),
            counted_prompt_tokens=plan.prompt_tokens,
            ctx_size=plan.ctx_size,
            simulated=self.info.simulated,
            engine=self.engine.name,
        )
        if record is None:
            figures.host_total_s = time.monotonic() - entered
            return figures
        first = record.first_token_at
        figures.host_first_token_s = None if first is None else first - entered
        figures.host_total_s = (record.ended_at or time.monotonic()) - entered
        figures.host_load_s = record.load_host_s
        p = record.profile
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
    load_timeout: float | None = None,
    stall_timeout: float | None = None,
    warm: bool = True,
    engine: str = "process",
) -> ChatSession:
    """A session on an open device: reads the bundle config and tokenizer from the phone,
    the device identity (serial, model, simulated) and opens the chat tables.

    ``model``: the LLM the user asked for; another model than the phone's bundle holds is
    refused here, before Genie ever runs (None: whatever the phone holds). ``warm``: load
    the tokenizer and template in the background now (see ``chat.warmup``). ``engine``:
    auto (a live genie-app session when the phone's passes its probe, else one genie-t2t-run
    per turn, with a note), session or process (``qwenchat.runner.open_engine``).
    """
    layout = PhoneLayout(work_dir or DEFAULT_WORK_DIR)
    runner = open_engine(device, layout, kind=engine)
    try:
        return _session_on(
            runner, device, layout, engine, system=system, settings=settings, store=store,
            model=model, keep_state=keep_state, load_timeout=load_timeout,
            stall_timeout=stall_timeout, warm=warm,
        )
    except BaseException:
        _close_quietly(runner)  # a refused model or a bad setting: no genie-app left behind
        raise


def _close_quietly(engine: Engine) -> None:
    try:
        engine.close()
    except QwenchatError:
        pass


def _session_on(
    engine: Engine,
    device: Any,
    layout: PhoneLayout,
    kind: str,
    *,
    system: str | None,
    settings: SamplerSettings | None,
    store: Any,
    model: ModelSpec | None,
    keep_state: bool,
    load_timeout: float | None,
    stall_timeout: float | None,
    warm: bool,
) -> ChatSession:
    held = engine.bundle.require_model(model)
    counter = TokenCounter(engine.bundle.tokenizer_file())
    if warm:
        from qwenchat.chat.warmup import warm_up

        warm_up(counter, held)
    device_info = read_device_info(device, layout.work_dir)
    info = SessionInfo(
        serial=str(getattr(device_info, "serial", device.serial)),
        model=str(getattr(device_info, "model", "?")),
        soc=str(getattr(device_info, "soc", "?")),
        simulated=bool(getattr(device_info, "simulated", False)),
    )
    settings = settings or SamplerSettings()
    ctx_size = engine.bundle.config.context_size or DEFAULT_CTX_SIZE
    for key, value in settings.as_dict().items():  # e.g. --max-tokens beyond this context
        validate_setting(key, value, ctx_size=ctx_size)
    if system:
        check_message(system, "the system prompt")
    storage = ChatStorage(store) if store is not None else None
    return ChatSession(
        engine=engine,
        counter=counter,
        model=held,
        keep_state=keep_state,
        storage=storage,
        system=system or None,
        settings=settings,
        info=info,
        load_timeout=load_timeout,
        stall_timeout=stall_timeout,
        engine_kind=kind,
    )


class _Screen:
    """The caller's on_text, kept from breaking the turn: a terminal that went away (SIGHUP
    closes it; writes then fail with EIO) must not lose the reply being stored."""

    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.on_text = on_text

    def write(self, text: str) -> None:
        if self.on_text is None:
            return
        try:
            self.on_text(text)
        except OSError:
            self.on_text = None


class _LiveWriter:
    """Keeps the stored reply close to what is on screen without a write per token: a host
    crash loses at most ``interval`` seconds of a reply, never a whole message; every other
    ending stores the whole reply."""

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
    "followup_prompt",
    "full_prompt",
    "open_chat_session",
    "parse_set_command",
    "plan_turn",
    "turns_to_drop",
    "validate_setting",
]
