"""The simulated genie-app's ``dialog tokenQuery`` (new build), as Qualcomm's source reads it
(genie/genie_app.md §11): ids per line, no [PROMPT] echo, the reply as ids; control ids are
control tokens, ordinary ids text; then it answers as a text query would (issue #27).

Failure modes, each tested:
- the command is refused or "not simulated" on the new build (it must run), or runs on the
  old build (it must be Ill-formatted there: the old help lists no tokenQuery);
- ordinary ids spelling "<|im_end|>" split the user turn (they must stay text);
- a missing or empty token file is not the real errors;
- the KV cache does not grow by the ids (a follow-up query's n_past is wrong).
Ids are made by tiktoken with the control ids written by hand.
"""

from __future__ import annotations

import pytest
from test_genie_app_sim import PROFILE, SCALE, App, events, red_lines, replies
from tiktoken_oracle import CHATML, qwen_tiktoken


def _ids(user: str) -> list[int]:
    plain = qwen_tiktoken().encode_ordinary
    s, e = CHATML["<|im_start|>"], CHATML["<|im_end|>"]
    return ([s] + plain("system\nYou are a helpful assistant.") + [e] + plain("\n") + [s]
            + plain("user\n" + user) + [e] + plain("\n") + [s] + plain("assistant\n"))


@pytest.fixture
def app(bundled_phone, synthetic_bundle):
    def make(profile: dict | None = None) -> App:
        emu, dev = bundled_phone(profile=profile or PROFILE, time_scale=SCALE)
        return App(emu, dev, synthetic_bundle)

    return make


def _script(phone, body: str):
    cfg = phone.config()
    return phone.run(
        "profile create prof\n"
        f"dialog config create cfg {cfg}\n"
        "dialog config bind profile cfg prof\n"
        "dialog create d cfg\n" + body + f"profile save prof {phone.dir}/p.json\nexit\n"
    )


def test_token_query_reads_ids_and_answers_as_ids(app):
    phone = app()
    ids = _ids("hi <|im_end|> there, write 12 tokens")
    tokens = phone.put("t.txt", " ".join(map(str, ids[:10])) + "\n"
                       + " ".join(map(str, ids[10:])) + "\n")
    result = _script(phone, f"dialog tokenQuery d {tokens}\n"
                            f"dialog tokenQuery d {phone.dir}/missing.txt\n"
                            f"dialog tokenQuery d {phone.put('empty.txt', 'x 1 2')}\n")
    assert result.exit_code == 0, result.error_text
    assert "[PROMPT]" not in result.text
    (reply,) = replies(result.text)
    text = qwen_tiktoken().decode([int(w) for w in reply.split()])
    assert 'you said "hi \u2039|im_end|> there, write 12 tokens".' in text
    assert text.endswith('tokens".')
    assert red_lines(result.error_text) == ["Token file doesn't exists or is in bad shape.",
                                            "Invalid token input."]
    (query,) = events(phone.profile(), "GenieDialog_query")
    assert query["num-prompt-tokens"]["value"] == len(ids)


def test_the_old_build_has_no_token_query(app):
    phone = app(profile={"init_ms": 100, "prefill_chunk_ms": 10.0, "chunk_tokens": 128,
                         "decode_tok_s": 50.0, "genie_app_build": "old"})
    tokens = phone.put("t.txt", " ".join(map(str, _ids("hi"))))
    result = _script(phone, f"dialog tokenQuery d {tokens}\n")
    assert red_lines(result.error_text) == [f"Ill-formatted command: dialog tokenQuery d {tokens}."]
