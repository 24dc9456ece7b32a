"""The HTTP side: routes, the API key, the body limit, JSON and Server-Sent Events.

Every answer that is not a completion is OpenAI's error shape with its status; nothing a
client sends raises out of a handler (an unexpected exception is a 500 in the same shape,
its traceback logged). A streamed reply starts once the phone gave its first text (so a
refused or failed request still gets its own status); a client that goes away mid-reply
has the reply stopped on the phone (``dialog abort``) and the phone freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qwenchat import __version__
from qwenchat.serve.errors import APIError, bad_request
from qwenchat.serve.phones import PhoneSlot, ServedReply
from qwenchat.serve.pool import Pool
from qwenchat.serve.protocol import ChatRequest, parse_body

log = logging.getLogger("qwenchat.serve")
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: ~250k tokens of text, far beyond any phone's context
SIMULATED_HEADER = "X-Qwenchat-Simulated"
# How often a non-streamed request looks whether its client is still there.
DISCONNECT_POLL_S = 0.1


@dataclass
class ServeConfig:
    api_key: str | None = None
    max_body: int = DEFAULT_MAX_BODY


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def build_app(pool: Pool, config: ServeConfig | None = None) -> Starlette:
    config = config or ServeConfig()
    api = _Api(pool, config)
    routes = [
        Route("/v1/chat/completions", api.guarded(api.chat_completions), methods=["POST"]),
        Route("/v1/models", api.guarded(api.list_models), methods=["GET"]),
        Route("/health", api.guarded(api.health), methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        words = {404: "no such endpoint", 405: "method not allowed"}
        message = f"{words.get(status, 'error')}: {request.method} {request.url.path}"
        return error_response(APIError(status, message, code="not_found" if status == 404
                                       else None))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # Shutdown: nothing new is taken; each phone finishes (or has cut) its reply, which
        # the session stores, then its genie-app is stopped.
        pool.drain()
        await asyncio.gather(*(asyncio.to_thread(slot.close) for slot in pool.slots))

    return Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan
    )


class _Api:
    def __init__(self, pool: Pool, config: ServeConfig) -> None:
        self.pool = pool
        self.config = config

    def guarded(self, handler):  # noqa: ANN001, ANN202 - a Starlette endpoint
        async def endpoint(request: Request) -> Response:
            try:
                self._check_key(request)
                return await handler(request)
            except APIError as exc:
                return error_response(exc)
            except Exception:  # noqa: BLE001 - nothing a client sends may crash the server
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                return error_response(APIError(500, "internal error (logged by the server)",
                                               code="internal_error"))

        return endpoint

    def _check_key(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), key.encode()
        ):
            raise APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer KEY' with the key "
                "`qwenchat serve --api-key` was given",
                code="invalid_api_key",
            )

    # ----- GET
    async def list_models(self, request: Request) -> Response:
        data = []
        for name, slots in sorted(self.pool.models().items()):
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "qwenchat",
                    "context_length": min(s.ctx_size for s in slots),
                    "phones": [s.serial for s in slots],
                    "simulated": any(s.simulated for s in slots),
                }
            )
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        phones = [
            {
                "serial": s.serial,
                "model": s.model,
                "busy": s.busy,
                "lost": s.lost,
                "simulated": s.simulated,
                "engine": s.session.engine.name,
                "context_used": s.session.state.tokens if s.session.state.valid else 0,
            }
            for s in self.pool.slots
        ]
        status = "draining" if self.pool.draining else (
            "ok" if any(not p["lost"] for p in phones) else "no_phone"
        )
        return JSONResponse(
            {"status": status, "phones": phones,
             "queue": {"waiting": self.pool.waiting, "limit": self.pool.limit}},
            status_code=200 if status == "ok" else 503,
        )

    # ----- POST /v1/chat/completions
    async def chat_completions(self, request: Request) -> Response:
        body = await self._body(request)
        chat = parse_body(body)
        slot = await self.pool.acquire(chat)
        job = _Job(slot, chat, asyncio.get_running_loop())
        job.start(self.pool)
        if chat.stream:
            return await self._stream(request, job)
        return await self._whole(request, job)

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise bad_request("Content-Length is not a number")
            if int(declared) > limit:
                raise APIError(413, f"the body is {declared} bytes; the limit is {limit}",
                               code="body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"the body is over the limit of {limit} bytes",
                               code="body_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _whole(self, request: Request, job: _Job) -> Response:
        try:
            while True:
                done, _ = await asyncio.wait({job.future}, timeout=DISCONNECT_POLL_S)
                if done:
                    break
                if await request.is_disconnected():
                    job.cancel("client")
                    break
        except asyncio.CancelledError:
            job.cancel("drain")  # the server stops and its grace period ran out
            raise
        reply = await job.reply()  # raises the request's APIError
        payload = job.envelope("chat.completion")
        payload["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ]
        payload["usage"] = reply.usage.as_json()
        payload["qwenchat"] = _figures(job, reply)
        return JSONResponse(payload, headers=job.headers())

    async def _stream(self, request: Request, job: _Job) -> Response:
        # The first event decides: text starts the stream; an error before any text is
        # that error's own status, as for a request that is not streamed.
        first = await job.next_event()
        if first[0] == "error":
            raise first[1]
        return StreamingResponse(
            self._events(job, first), media_type="text/event-stream",
            headers={**job.headers(), "Cache-Control": "no-cache"},
        )

    async def _events(self, job: _Job, first: tuple[str, Any]) -> AsyncIterator[bytes]:
        chat = job.chat
        usage_none = {"usage": None} if chat.include_usage else {}
        event = first
        try:
            yield _sse(job.chunk({"role": "assistant", "content": ""}, None, usage_none))
            while True:
                kind, value = event
                if kind == "text":
                    yield _sse(job.chunk({"content": value}, None, usage_none))
                elif kind == "done":
                    reply: ServedReply = value
                    yield _sse(job.chunk({}, reply.finish_reason, usage_none))
                    if chat.include_usage:
                        last = job.envelope("chat.completion.chunk")
                        last["choices"] = []
                        last["usage"] = reply.usage.as_json()
                        last["qwenchat"] = _figures(job, reply)
                        yield _sse(last)
                    break
                else:  # an error once the stream had begun: OpenAI's error event
                    yield _sse(value.body())
                    break
                event = await job.next_event()
            yield b"data: [DONE]\n\n"
        finally:
            if not job.future.done():
                # The client went away (or the server stops): stop the reply on the phone.
                job.cancel("drain" if self.pool.draining else "client")


class _Job:
    """One request on one phone: its worker-thread future, the texts it streams, and the
    phone given back to the pool when (and only when) the phone is done with it."""

    def __init__(self, slot: PhoneSlot, chat: ChatRequest, loop: asyncio.AbstractEventLoop):
        self.slot = slot
        self.chat = chat
        self.loop = loop
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.future: asyncio.Future[ServedReply]
        self.started = time.monotonic()
        self._done_seen = False

    def start(self, pool: Pool) -> None:
        def on_text(text: str) -> None:  # the phone's worker thread
            self.loop.call_soon_threadsafe(self.events.put_nowait, ("text", text))

        inner = self.slot.submit(self.chat, on_text)
        self.future = asyncio.wrap_future(inner, loop=self.loop)

        def finished(future: asyncio.Future[ServedReply]) -> None:
            pool.release(self.slot, time.monotonic() - self.started)
            if future.cancelled():
                self.events.put_nowait(("error", APIError(503, "cancelled", code="reply_cut")))
                return
            exc = future.exception()
            if exc is None:
                self.events.put_nowait(("done", future.result()))
            elif isinstance(exc, APIError):
                self.events.put_nowait(("error", exc))
            else:
                log.error("phone %s failed: %r", self.slot.serial, exc, exc_info=exc)
                message = getattr(exc, "message", None) or "internal error (logged by the server)"
                self.events.put_nowait(("error", APIError(500, message, code="internal_error")))

        self.future.add_done_callback(finished)

    async def next_event(self) -> tuple[str, Any]:
        return await self.events.get()

    async def reply(self) -> ServedReply:
        try:
            return await asyncio.shield(self.future)
        except APIError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported as a 500, logged in finished()
            message = getattr(exc, "message", None) or "internal error (logged by the server)"
            raise APIError(500, message, code="internal_error") from None

    def cancel(self, why: str) -> None:
        self.slot.cancel(why)

    def envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.slot.model,
            "system_fingerprint": fingerprint(self.slot),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None,
              extra: dict[str, Any]) -> dict[str, Any]:
        out = self.envelope("chat.completion.chunk")
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                           "finish_reason": finish}]
        out.update(extra)
        return out

    def headers(self) -> dict[str, str]:
        return {
            SIMULATED_HEADER: "true" if self.slot.simulated else "false",
            "X-Qwenchat-Phone": self.slot.serial,
        }


def fingerprint(slot: PhoneSlot) -> str:
    """Which qwenchat and engine answered; an emulated phone's answer says SIMULATED."""
    sim = "-SIMULATED" if slot.simulated else ""
    return f"qwenchat-{__version__}-{slot.session.engine.name}{sim}"


def _figures(job: _Job, reply: ServedReply) -> dict[str, Any]:
    """qwenchat's own figures of the reply (Genie's profile and the host clock, each named),
    beside OpenAI's fields; clients that do not know them ignore them."""
    figures = reply.result.figures.as_json()
    # The session counts from its send (a typed message's Enter); here that is the moment
    # the request reached its phone's worker (after the queue, if it waited).
    figures["host"]["source"] = "host clock, from the request reaching its phone"
    return {
        "conversation_id": reply.conversation_id,
        "phone": job.slot.serial,
        "prompt_mode": reply.result.mode.value,
        "prefilled_tokens": reply.prefilled,
        "figures": figures,
        # Host clock around the chat session's whole turn (ChatSession.send), for the
        # server's own overhead: the client's wall time minus this.
        "host_session_s": reply.session_s,
        "simulated": job.slot.simulated,
    }


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"


__all__ = ["DEFAULT_MAX_BODY", "SIMULATED_HEADER", "ServeConfig", "build_app", "fingerprint"]
