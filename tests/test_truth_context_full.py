"""A reply that fills the context, with the Genie of Qualcomm's sources: genie-t2t-run prints
[END], "Context Size was exceeded." and "Failed to query." on stderr, exits 1 and writes
neither its --save state nor its profile; genie-app's query fails the same way, adding no
profile event. The user still sees stop reason "context full" and the partial reply is
stored (judged in the reopened SQLite store), for both engines.

The chat's own budget keeps prompt + max tokens within the context, so only a count that
disagrees with Genie's gets there: the host's counter is made to undercount (as a tokenizer
that is not the phone's would), with the real prompt 10 tokens short of the context.

Failure modes:
- the failed query is reported as an error ("genie-t2t-run failed") instead of "context full";
- the partial reply is lost (not stored, or stored empty);
- a dialog state is trusted after it (no --save state was written).
"""

from __future__ import annotations

import pytest

from qwenchat.chat.plan import ChatMessage, full_prompt
from qwenchat.chat.session import SamplerSettings, StopReason, open_chat_session
from qwenchat.chat.storage import ChatStorage
from qwenchat.store import open_store


class _Undercounting:
    def __init__(self, real):
        self.real = real

    def count(self, text: str) -> int:
        return self.real.count(text) // 4


@pytest.mark.parametrize("engine", ["process", "session"])
def test_a_reply_that_fills_the_context_is_context_full_and_stored(
    bundled_phone, tmp_path, engine
):
    _, dev = bundled_phone(profile={"decode_tok_s": 5000})
    path = tmp_path / "store.db"
    with open_store(path) as store:
        session = open_chat_session(dev, engine=engine, store=store,
                                    settings=SamplerSettings(max_tokens=200))  # fmt: skip
        real = session.counter
        n = 4000
        while real.count(full_prompt(None, [ChatMessage("user", "word " * n)])) < 4086:
            n += 1
        text = "word " * n
        assert real.count(full_prompt(None, [ChatMessage("user", text)])) == 4086
        session.counter = _Undercounting(real)
        result = session.send(text)
        assert result.stop is StopReason.CONTEXT_FULL, (result.stop, result.error)
        assert result.error is None and result.text
        assert result.figures.genie_generated_tokens is None  # Genie wrote no profile
        assert not session.state.valid  # no --save state: nothing to restore next turn
        chat_id, partial = session.session_id, result.text
        session.end()
    with open_store(path) as store:
        saved = ChatStorage(store).conversation(chat_id)
    last = saved["messages"][-1]
    assert (last["role"], last["content"], last["stop_reason"]) == (
        "assistant", partial, "context_full")
