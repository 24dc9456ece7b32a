"""Figures of one turn against oracles the test holds itself: its own clock around the call,
and tiktoken (tests/tiktoken_oracle.py, no code shared with qwenchat's tokenizer) for token
counts. Through the emulated phone.

- A turn stopped by an exception (Ctrl-C where no handler is installed) has no record from
  the runner, yet its reply is stored with a host total time: that time must be the time that
  passed, within what the test measured around the call.
- The context a reply used is Genie's own count of the tokens it generated, not a recount of
  the text it printed: the two differ when Genie stops at max-num-tokens inside a multi-byte
  character (its callback prints whole characters only, so the last token's bytes are never
  printed, but the token was generated and sits in the dialog's KV cache).
"""

from __future__ import annotations

import time

import pytest
from tiktoken_oracle import qwen_tiktoken, qwen_tiktoken_count

from qwenchat.chat.session import SamplerSettings, StopReason, open_chat_session
from qwenchat.store import open_store

ASK = "Write about phones, 100 tokens"
# With this seed the simulated reply holds "... network. 🤖" early on: Qwen2's byte-level BPE
# splits that emoji over three tokens.
SEED = 4
PROMPT = (  # the first turn's prompt, written out by hand (ChatML, default system prompt)
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    f"<|im_start|>user\n{ASK}<|im_end|>\n<|im_start|>assistant\n"
)


def test_a_turn_stopped_by_an_exception_stores_the_time_that_passed(bundled_phone, tmp_path):
    _, dev = bundled_phone()
    path = tmp_path / "store.db"
    with open_store(path) as store:
        s = open_chat_session(dev, store=store)

        def interrupted(piece: str) -> None:
            raise KeyboardInterrupt  # Ctrl-C while the first piece is on its way to the screen

        before = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            s.send("Hello", on_text=interrupted)
        after = time.monotonic()
        assert s.last is not None and s.last.stop is StopReason.CUT
        figures = s.last.figures
        assert figures.genie_generated_tokens is None  # no record, no profile: host clock only
        assert 0 <= figures.host_prepare_s <= figures.host_total_s <= after - before
        stored = store.db.execute(
            "SELECT stop_reason, host_total_s FROM chat_replies WHERE conversation_id = ?",
            (s.session_id,),
        ).fetchall()
    assert [tuple(row) for row in stored] == [("cut", figures.host_total_s)]


def _cut_inside_a_character(text: str) -> tuple[int, str]:
    """(n, what Genie prints of the first n tokens) for the smallest n (tiktoken's tokens of
    ``text``) whose bytes end inside a multi-byte character and whose printed text, recounted,
    is not n tokens (a token holding a space and the first bytes of a character prints the
    space alone, which recounts as one token: those cuts cannot tell the counts apart)."""
    enc = qwen_tiktoken()
    data = b""
    for n, token in enumerate(enc.encode(text), start=1):
        data += enc.decode_single_token_bytes(token)
        printed = data.decode("utf-8", errors="ignore")  # Genie prints whole characters only
        if len(printed.encode()) < len(data) and qwen_tiktoken_count(printed) != n:
            return n, printed
    raise AssertionError(f"no cut inside a character tells the counts apart in {text!r}")


def test_ctx_used_counts_the_tokens_genie_generated_not_the_text_it_printed(bundled_phone):
    _, dev = bundled_phone()
    whole = open_chat_session(dev, settings=SamplerSettings(max_tokens=512, seed=SEED)).send(ASK)
    assert whole.stop is StopReason.EOS
    assert whole.figures.genie_generated_tokens == qwen_tiktoken_count(whole.text)

    n, printed = _cut_inside_a_character(whole.text)
    assert whole.text.startswith(printed)
    assert qwen_tiktoken_count(printed) < n  # the recount of the printed text falls short

    # The same question, the same sampler: the same reply, stopped after n tokens.
    cut = open_chat_session(dev, settings=SamplerSettings(max_tokens=n, seed=SEED)).send(ASK)
    assert cut.text == printed
    assert cut.stop is StopReason.MAX_TOKENS
    assert cut.figures.genie_generated_tokens == n
    assert cut.figures.ctx_used == qwen_tiktoken_count(PROMPT) + n
