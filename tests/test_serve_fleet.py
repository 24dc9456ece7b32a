"""`qwenchat serve` on two emulated phones: 8 concurrent clients, routing by conversation.

Oracles: the simulated model's reply (it quotes the last user message and counts the
prompt), the response's phone header, the store's rows read with sqlite3, the emulated
phones' command logs.

Failure modes, each tested below:
- a client gets another client's answer, a mix of two, or nothing (lost in the queue);
- a reply cut short under load (every answer must end on its own: finish_reason stop/length
  and the full quoted message);
- one phone doing all the work while the other idles;
- a follow-up routed to the phone that does not hold its conversation (re-prefilled in
  full) while the phone that holds it is idle.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3

import openai
from serve_helpers import MODEL, served_fixture  # noqa: F401

from qwenchat.emulator.commandlog import read_records


async def _parsed(response):
    # The raw response of the async client parses synchronously (openai's legacy wrapper).
    parsed = response.parse()
    return await parsed if inspect.isawaitable(parsed) else parsed


def test_eight_clients_on_two_phones_each_get_their_own_whole_answer(served):
    srv = served(phones=2)
    serials = {emu.serial for emu, _ in srv.phones}

    async def one(client: openai.AsyncOpenAI, n: int, stream: bool):
        text = f"client {n} asks question {n * 7}"
        if stream:
            response = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": text}], stream=True,
                stream_options={"include_usage": True}, max_tokens=60,
            )
            stream_of = await _parsed(response)
            chunks = [c async for c in stream_of]
            reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
            usage = chunks[-1].usage
        else:
            response = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=60
            )
            parsed = await _parsed(response)
            reply, finish, usage = (parsed.choices[0].message.content,
                                    parsed.choices[0].finish_reason, parsed.usage)
        return n, text, reply, finish, usage, response.headers["x-qwenchat-phone"]

    async def run():
        client = openai.AsyncOpenAI(base_url=srv.base, api_key="unused", max_retries=0)
        try:
            return await asyncio.gather(*(one(client, n, n % 2 == 0) for n in range(8)))
        finally:
            await client.close()

    results = asyncio.run(run())
    assert sorted(r[0] for r in results) == list(range(8))
    for n, text, reply, finish, usage, phone in results:
        assert f'you said "{text}".' in reply, (n, reply)  # its own question, whole
        others = [f"client {m} asks" for m in range(8) if m != n]
        assert not any(other in reply for other in others), (n, reply)
        assert finish in ("stop", "length") and usage.completion_tokens > 0
        assert phone in serials
    assert {r[5] for r in results} == serials  # both phones worked
    db = sqlite3.connect(srv.db)
    stored = dict(db.execute(
        "SELECT u.content, a.content FROM chat_messages u JOIN chat_messages a"
        " ON a.conversation_id = u.conversation_id AND a.id > u.id"
        " WHERE u.role = 'user' AND a.role = 'assistant'"
    ).fetchall())
    assert {text: reply for _, text, reply, *_ in results} == stored


def test_a_follow_up_goes_to_the_phone_holding_its_conversation(served):
    srv = served(phones=2)
    client = openai.OpenAI(base_url=srv.base, api_key="unused")
    holders = {}
    for topic in ("apples", "boats"):
        got = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": topic}], max_tokens=20
        )
        holders[topic] = (got.headers["x-qwenchat-phone"], got.parse())
    assert holders["apples"][0] != holders["boats"][0]  # the second went to the idle phone
    for topic in ("boats", "apples"):  # in the other order: routing, not round robin
        phone, first = holders[topic]
        got = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": topic},
                      {"role": "assistant", "content": first.choices[0].message.content},
                      {"role": "user", "content": "and then?"}],
            max_tokens=20,
        )
        follow = got.parse()
        assert got.headers["x-qwenchat-phone"] == phone
        assert follow.usage.prompt_tokens_details.cached_tokens == (
            first.usage.prompt_tokens + first.usage.completion_tokens
        )
    for emu, _ in srv.phones:
        records = read_records(emu.root)
        assert sum("dialog reset" in r.get("what", "") for r in records) == 0
