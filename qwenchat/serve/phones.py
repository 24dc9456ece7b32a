"""One phone behind the server: its chat session, and one request answered on it.

A phone keeps ONE conversation in its live dialog (the chat session's transcript and the
genie-app dialog's KV cache). A request whose system prompt and earlier turns are exactly
that transcript is the conversation's next turn: it goes to ``ChatSession.send`` as a typed
message would, which prefills only the new turn when the dialog holds the rest. Any other
request starts a new conversation from its messages (``load_transcript``) and the session
rebuilds the whole prompt. The prompt is rendered by the session (``chat.plan``), never
here.

Each phone has one worker thread: the session is only ever driven from it, one request at
a time (the pool makes sure of that).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwenchat.chat.outcome import PromptMode, StopReason
from qwenchat.chat.plan import ChatMessage, ContextBudgetError
from qwenchat.errors import DeviceError, DeviceLostError, QwenchatError, UsageError
from qwenchat.serve.errors import APIError

if TYPE_CHECKING:
    from qwenchat.chat.outcome import ReplyResult
    from qwenchat.chat.session import ChatSession
    from qwenchat.serve.protocol import ChatRequest

SERVED = "served"  # the stored conversation's origin (history and export show it)


@dataclass(frozen=True)
class Usage:
    """Tokens of one reply as Genie counted them (its profile), the host's count where Genie
    wrote no profile; ``cached``: the tokens the phone's dialog already held."""

    prompt: int
    completion: int
    cached: int

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        }


@dataclass(frozen=True)
class ServedReply:
    text: str  # what the client gets (cut before a stop sequence)
    finish_reason: str  # "stop" | "length"
    usage: Usage
    result: ReplyResult
    conversation_id: str
    prefilled: int  # tokens Genie prefilled for this request (its profile, else counted)
    session_s: float = 0.0  # host clock: the whole ChatSession.send call (the phone's turn)


class StopScanner:
    """OpenAI's ``stop``: text is passed on only once it cannot be the start of a stop
    sequence; the first sequence found ends the reply (it and what follows are dropped)."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.held = ""
        self.hit = False
        self.passed: list[str] = []

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        if not self.stops:
            self.passed.append(text)
            return text
        self.held += text
        found = [at for at in (self.held.find(s) for s in self.stops) if at >= 0]
        if found:
            self.hit = True
            out, self.held = self.held[: min(found)], ""
        else:
            keep = max((_overlap(self.held, s) for s in self.stops), default=0)
            out, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        self.passed.append(out)
        return out

    def flush(self) -> str:
        """The end of the reply: text held back as a possible stop's start is passed on."""
        out, self.held = ("" if self.hit else self.held), ""
        self.passed.append(out)
        return out

    @property
    def text(self) -> str:
        return "".join(self.passed)


def _overlap(text: str, stop: str) -> int:
    """The longest end of ``text`` that is a start of ``stop`` (shorter than ``stop``)."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0


class PhoneSlot:
    """A phone, its chat session, its worker thread; ``busy`` is the pool's to set."""

    def __init__(
        self, session: ChatSession, reopen: Callable[[], Any] | None = None
    ) -> None:
        self.session = session
        session.origin = SERVED
        self.reopen = reopen  # opens the same phone again (after it was lost)
        self.busy = False
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"phone-{session.info.serial}")
        self._cancel_lock = threading.Lock()
        self._stop_reason: str | None = None  # why the running reply is being cut
        self._closed = False

    # ----- what the pool routes on
    @property
    def serial(self) -> str:
        return self.session.info.serial

    @property
    def model(self) -> str:
        return self.session.model_name

    @property
    def ctx_size(self) -> int:
        return self.session.ctx_size

    @property
    def simulated(self) -> bool:
        return self.session.info.simulated

    @property
    def lost(self) -> bool:
        return self.session.lost

    def holds(self, request: ChatRequest) -> bool:
        """The request names the model this phone holds (its name or an alias)."""
        from qwenchat.models.registry import get_model

        try:
            return get_model(request.model).name == self.model
        except UsageError:
            return False

    def same_conversation(self, request: ChatRequest) -> bool:
        """The request's earlier turns are this phone's transcript, word for word."""
        s = self.session
        return s.system == request.system and [(m.role, m.content) for m in s.messages] == [
            (t.role, t.content) for t in request.history
        ]

    def extends(self, request: ChatRequest) -> bool:
        """The phone's dialog holds the request's earlier turns: only the new one is
        prefilled (an older genie-app also needs the same sampler: another one there means
        a new dialog)."""
        s = self.session
        # (The per-turn engine restores state saved under the old sampler: kept as it was.)
        same_sampler = (s.engine.keeps_model_loaded and s.engine.sampler_per_query) or (
            _sampler(s.settings) == _sampler(request.settings)
        )
        return not s.lost and s.state.valid and self.same_conversation(request) and same_sampler

    # ----- one request
    def submit(
        self, request: ChatRequest, on_text: Callable[[str], None]
    ) -> Future[ServedReply]:
        return self._worker.submit(self._answer, request, on_text)

    def cancel(self, why: str) -> None:
        """Stop the running reply (the client went away, the server drains); safe from any
        thread. The session's engine aborts the dialog's query, the model stays loaded."""
        with self._cancel_lock:
            if self._stop_reason is None:
                self._stop_reason = why
        self.session.cancel()

    def _answer(self, request: ChatRequest, on_text: Callable[[str], None]) -> ServedReply:
        entered = time.monotonic()
        self._stop_reason = None
        s = self.session
        if s.lost:
            self._reconnect()
        if not self.same_conversation(request):
            self._new_conversation(request)
        changed = {
            key: getattr(request.settings, key)
            for key in ("temp", "top_p", "seed", "max_tokens", "top_k")
            if getattr(request.settings, key) != getattr(s.settings, key)
        }
        if changed:
            try:
                s.update_settings(**changed)
            except UsageError as exc:
                param = "max_tokens" if "max_tokens" in exc.message else None
                raise APIError(400, exc.message, code="invalid_value", param=param) from None
        scanner = StopScanner(request.stop)

        def _text(piece: str) -> None:
            out = scanner.feed(piece)
            if out:
                on_text(out)
            if scanner.hit:
                self.cancel("stop")

        cached = s.state.tokens
        sent = time.monotonic()
        try:
            try:
                result = s.send(request.user, _text, entered_at=entered)
            except ContextBudgetError as exc:
                # No max_tokens asked: as OpenAI's, the reply may take what the context has
                # left (finish_reason "length" when it fills); nothing was sent yet.
                room = exc.ctx_size - (exc.needed - s.max_tokens)
                if request.settings.max_tokens is not None or room < 1:
                    raise
                s.update_settings(max_tokens=room)
                result = s.send(request.user, _text, entered_at=entered)
        except ContextBudgetError as exc:
            raise APIError(
                400,
                f"this request needs {exc.needed} tokens of context (prompt + max tokens); "
                f"the model on the phone has {exc.ctx_size}",
                code="context_length_exceeded",
                param="messages",
            ) from None
        except DeviceLostError as exc:
            raise APIError(502, f"the phone {self.serial} is lost: {exc.message}",
                           code="phone_lost") from None
        except UsageError as exc:
            raise APIError(400, exc.message, code="invalid_value") from None
        session_s = time.monotonic() - sent
        rest = scanner.flush()
        if rest:
            on_text(rest)
        return dataclasses.replace(
            self._reply(request, result, scanner, cached), session_s=session_s
        )

    def _reply(
        self, request: ChatRequest, result: ReplyResult, scanner: StopScanner, cached: int
    ) -> ServedReply:
        stop = result.stop
        why = self._stop_reason
        if stop is StopReason.CUT and why == "stop" and scanner.hit:
            finish = "stop"
        elif stop is StopReason.CUT:
            raise APIError(
                503,
                "the reply was cut: " + ("the server is shutting down" if why == "drain"
                                         else "the client went away"),
                code="reply_cut",
            )
        elif stop is StopReason.TIMED_OUT:
            raise APIError(504, f"Genie on {self.serial} timed out: {result.error}",
                           code="genie_timeout")
        elif stop is StopReason.DEVICE_LOST:
            raise APIError(502, f"the phone {self.serial} was lost: {result.error}",
                           code="phone_lost")
        elif stop is StopReason.FAILED:
            raise APIError(502, f"Genie on {self.serial} failed: {result.error}",
                           code="genie_failed")
        elif stop in (StopReason.MAX_TOKENS, StopReason.CONTEXT_FULL):
            finish = "length"
        else:
            finish = "stop"
        f = result.figures
        follow_up = result.mode is PromptMode.FOLLOWUP
        prefilled = f.genie_prompt_tokens or f.counted_prompt_tokens or 0
        cached = cached if follow_up else 0
        completion = f.genie_generated_tokens
        if completion is None:
            completion = self.session.counter.count(result.text) if result.text else 0
        return ServedReply(
            text=scanner.text,
            finish_reason=finish,
            usage=Usage(prompt=cached + prefilled, completion=completion, cached=cached),
            result=result,
            conversation_id=self.session.session_id,
            prefilled=prefilled,
        )

    def _new_conversation(self, request: ChatRequest) -> None:
        """The request's messages become this phone's conversation (a new stored one); its
        dialog is rebuilt from them on the next turn."""
        from qwenchat.chat.transcript import Transcript

        s = self.session
        messages = tuple(ChatMessage(t.role, t.content) for t in request.history)
        s.load_transcript(Transcript(system=request.system, settings=s.settings,
                                     messages=messages))

    def _reconnect(self) -> None:
        if self.reopen is None:
            raise APIError(502, f"the phone {self.serial} is lost", code="phone_lost")
        try:
            self.session.reconnect(self.reopen())
        except (DeviceError, QwenchatError) as exc:
            raise APIError(502, f"the phone {self.serial} is lost: {exc.message}",
                           code="phone_lost") from None

    def close(self) -> None:
        """The server stops: wait for the running reply, then end the session (genie-app
        stops, the dialog state is removed)."""
        if self._closed:
            return
        self._closed = True
        self._worker.shutdown(wait=True)
        self.session.end()


def _sampler(settings: Any) -> tuple[Any, ...]:
    return (settings.temp, settings.top_k, settings.top_p, settings.seed)


__all__ = ["PhoneSlot", "ServedReply", "StopScanner", "Usage"]
