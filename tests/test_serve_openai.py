"""`qwenchat serve` driven by the official `openai` package (sync and async, streamed and not)
on emulated phones over a real loopback socket.

Oracles: the independent tiktoken count of hand-written ChatML prompts, the simulated
model's reply text (it quotes the last user message), the emulated phone's command log
(genie-app's script lines), the store's rows read with sqlite3, `qwenchat history` output.

Failure modes, each tested below:
- a follow-up that extends the phone's dialog re-prefills the whole conversation (no KV
  reuse), or cached_tokens does not say what the dialog held;
- a request that does not extend it continues the old context instead of resetting;
- usage not Genie's count (prompt tokens off by the template), finish_reason wrong
  (length vs stop), the stream's text differing from the stored/non-streamed reply;
- the stream lacking the role chunk, the finish chunk, the usage chunk or [DONE];
- a stop sequence passed through, or the reply not ended at it;
- a served conversation not stored, or not marked served; SIMULATED missing from an
  emulated phone's answer (system_fingerprint, header).
"""

from __future__ import annotations

import asyncio
import sqlite3

import openai
from serve_helpers import MODEL, served_fixture  # noqa: F401
from tiktoken_oracle import qwen_tiktoken_count

from qwenchat.emulator.commandlog import read_records

DEFAULT_SYSTEM = "You are a helpful assistant."  # Qwen2's template, when none is given


def chatml(system: str, turns: list[tuple[str, str]]) -> str:
    out = f"<|im_start|>system\n{system}<|im_end|>\n"
    for role, text in turns:
        out += f"<|im_start|>{role}\n{text}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


def followup(text: str) -> str:
    # Genie pushes the previous turn's <|im_end|> itself before a restored query.
    return f"<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def script_lines(emu, words: str) -> int:
    return sum(
        words in r.get("what", "") for r in read_records(emu.root)
        if r.get("kind") in ("shell", "stdin")
    )


def test_a_follow_up_prefills_only_its_new_turn(served):
    srv = served()
    emu, _ = srv.phones[0]
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    first = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}], max_tokens=12
    )
    text = first.choices[0].message.content
    assert text.startswith("SIMULATED reply (prompt 21 tokens): you")
    assert first.usage.prompt_tokens == qwen_tiktoken_count(
        chatml(DEFAULT_SYSTEM, [("user", "hello there")])
    )
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert first.usage.completion_tokens == 12 and first.choices[0].finish_reason == "length"
    assert first.id.startswith("chatcmpl-") and first.model == MODEL
    assert first.system_fingerprint.endswith("-SIMULATED")

    history = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": text}]
    second = client.chat.completions.create(
        model=MODEL, messages=history + [{"role": "user", "content": "more"}], max_tokens=12
    )
    held = first.usage.prompt_tokens + first.usage.completion_tokens
    assert second.usage.prompt_tokens_details.cached_tokens == held
    assert second.usage.prompt_tokens == held + qwen_tiktoken_count(followup("more"))
    assert second.model_extra["qwenchat"]["prompt_mode"] == "followup"
    assert script_lines(emu, "dialog create") == 1 and script_lines(emu, "dialog reset") == 0

    # Another conversation (its first turn differs): the dialog is reset, all is prefilled.
    other = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "something else"}], max_tokens=12
    )
    assert other.usage.prompt_tokens_details.cached_tokens == 0
    assert other.usage.prompt_tokens == qwen_tiktoken_count(
        chatml(DEFAULT_SYSTEM, [("user", "something else")])
    )
    assert script_lines(emu, "dialog reset") == 1 and script_lines(emu, "dialog create") == 1

    # An edited earlier reply is not the dialog's conversation either.
    edited = history[:1] + [{"role": "assistant", "content": "edited"}]
    again = client.chat.completions.create(
        model=MODEL, messages=edited + [{"role": "user", "content": "more"}], max_tokens=12
    )
    assert again.usage.prompt_tokens_details.cached_tokens == 0
    assert again.usage.prompt_tokens == qwen_tiktoken_count(
        chatml(DEFAULT_SYSTEM, [("user", "hello there"), ("assistant", "edited"),
                                ("user", "more")])
    )


def test_a_streamed_reply_is_the_stored_one_with_usage_and_done(served):
    srv = served()
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be terse."},
                  {"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-qwenchat-simulated"] == "true"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert 'you said "stream this please"' in text
    assert chunks[-1].usage.prompt_tokens == qwen_tiktoken_count(
        chatml("Be terse.", [("user", "stream this please")])
    )
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.system_fingerprint.endswith("-SIMULATED") for c in chunks)
    # The stored reply is the streamed one, marked served, with Genie's figures.
    db = sqlite3.connect(srv.db)
    origin, system, simulated = db.execute(
        "SELECT origin, system_prompt, simulated FROM chat_conversations"
    ).fetchone()
    assert (origin, system, simulated) == ("served", "Be terse.", 1)
    stored = db.execute(
        "SELECT m.content, r.genie_num_generated_tokens FROM chat_messages m JOIN chat_replies r"
        " ON r.message_id = m.id WHERE m.role = 'assistant'"
    ).fetchall()
    assert stored == [(text, chunks[-1].usage.completion_tokens)]


def test_a_stream_without_include_usage_has_no_usage_field(served):
    srv = served()
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=5,
    ))
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "length"


def test_the_async_client_streamed_and_not(served):
    srv = served()

    async def run():
        client = openai.AsyncOpenAI(base_url=srv.base, api_key="unused")
        whole = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "async one"}], max_tokens=30
        )
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "async one"},
                      {"role": "assistant", "content": whole.choices[0].message.content},
                      {"role": "user", "content": "async two"}],
            stream=True, stream_options={"include_usage": True}, max_tokens=30,
        )
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            usage = chunk.usage or usage
        await client.close()
        return whole, "".join(pieces), usage

    whole, streamed, usage = asyncio.run(run())
    assert 'you said "async one"' in whole.choices[0].message.content
    assert 'you said "async two"' in streamed
    assert usage.prompt_tokens_details.cached_tokens == (
        whole.usage.prompt_tokens + whole.usage.completion_tokens
    )


def test_a_stop_sequence_ends_the_reply_before_it(served):
    srv = served()
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    got = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stop me"}], stop=["reply ("],
    )
    assert got.choices[0].message.content == "SIMULATED "
    assert got.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stop me"}], stop=["said"],
        stream=True,
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tokens = qwen_tiktoken_count(chatml(DEFAULT_SYSTEM, [("user", "stop me")]))
    assert text == f"SIMULATED reply (prompt {tokens} tokens): you "
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_models_and_health_name_the_phone_and_context(served):
    srv = served()
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].model_extra["context_length"] == 4096
    assert models[0].model_extra["phones"] == [srv.phones[0][0].serial]
    import httpx

    health = httpx.get(srv.url + "/health").json()
    assert health["status"] == "ok" and health["queue"] == {"waiting": 0, "limit": 16}
    assert [p["serial"] for p in health["phones"]] == [srv.phones[0][0].serial]
    assert health["phones"][0]["simulated"] is True


def test_history_shows_served_conversations(served, capsys):
    srv = served()
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "for the history"}], max_tokens=5
    )
    srv.stop()  # the conversation is in the store, the server is gone
    from qwenchat.cli import app
    from qwenchat.cli.errors import run_app

    assert run_app(app, ["history"]) == 0
    listing = capsys.readouterr().out
    assert "served" in listing and "for the history" in listing
    assert run_app(app, ["history", "last"]) == 0
    shown = capsys.readouterr().out
    assert "served (qwenchat serve)" in shown and "SIMULATED" in shown
    assert run_app(app, ["history", "last", "--json"]) == 0
    assert '"origin": "served"' in capsys.readouterr().out


def test_per_request_sampling_keeps_the_model_and_the_conversation(served):
    """temperature/top_p/seed change per request: genie-app's `sampler applyConfig` on the
    live dialog (no second load, the follow-up still prefills only its turn); an older
    genie-app makes a new dialog for it, and the conversation is prefilled again."""
    srv = served()
    emu, _ = srv.phones[0]
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    messages = [{"role": "user", "content": "pick a word"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=40)
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "again"}]
    second = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=40, temperature=0.2, top_p=0.5, seed=11
    )
    held = first.usage.prompt_tokens + first.usage.completion_tokens
    assert second.usage.prompt_tokens_details.cached_tokens == held
    assert script_lines(emu, "dialog create") == 1
    assert script_lines(emu, "sampler applyConfig") == 1

    old = served(profile={"genie_app_build": "old"})
    emu_old, _ = old.phones[0]
    client = openai.OpenAI(base_url=old.base, api_key="unused")
    first = client.chat.completions.create(model=MODEL, messages=messages[:1], max_tokens=40)
    again = messages[:1] + [{"role": "assistant", "content": first.choices[0].message.content},
                            {"role": "user", "content": "again"}]
    second = client.chat.completions.create(model=MODEL, messages=again, max_tokens=40, seed=11)
    assert second.usage.prompt_tokens_details.cached_tokens == 0  # a new dialog: all again
    assert script_lines(emu_old, "dialog create") == 2
