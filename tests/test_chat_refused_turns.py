"""Turns refused for the context budget, through the emulated phone.

- A /continue refused by our count runs nothing on the phone, so the phone's saved dialog
  still holds the conversation: the next message is a follow-up on it, not a rebuild.
- A turn Genie refuses (our count said it fits) leaves the transcript, and the store keeps
  it flagged as dropped, as `history` shows dropped turns, never as part of the chat."""

from __future__ import annotations

import pytest

from qwenchat.chat.session import (
    ContextBudgetError,
    PromptMode,
    SamplerSettings,
    StopReason,
    open_chat_session,
)
from qwenchat.store import open_store


def test_a_continue_refused_for_the_budget_leaves_the_dialog_to_follow_up_on(bundled_phone):
    _, dev = bundled_phone()
    s = open_chat_session(dev, engine="process", settings=SamplerSettings(max_tokens=8))
    try:
        first = s.send("Hello")
        assert first.stop is StopReason.MAX_TOKENS  # cut: a reply one can continue
        s.update_settings(max_tokens=4090)  # the history + 4090 > the 4096-token context
        with pytest.raises(ContextBudgetError):
            s.continue_reply()
        s.update_settings(max_tokens=8)
        assert s.send("Go on").mode is PromptMode.FOLLOWUP
    finally:
        s.end()


class _Undercounting:
    """Counts a quarter of the real tokens: a tokenizer that is not the phone's."""

    def __init__(self, real):
        self.real = real

    def count(self, text: str) -> int:
        return self.real.count(text) // 4


def test_a_turn_genie_refuses_is_kept_in_the_store_flagged_dropped(bundled_phone, tmp_path):
    _, dev = bundled_phone()
    with open_store(tmp_path / "store.db") as store:
        s = open_chat_session(dev, store=store, settings=SamplerSettings(max_tokens=16))
        try:
            first = s.send("Hello.")
            s.counter = _Undercounting(s.counter)
            long_text = "word " * 5000  # ~5000 real tokens: beyond the 4096-token context
            with pytest.raises(ContextBudgetError):
                s.send(long_text)
            rows = store.db.execute(
                "SELECT role, content, dropped FROM chat_messages WHERE conversation_id = ?"
                " ORDER BY id",
                (s.session_id,),
            ).fetchall()
        finally:
            s.end()
    assert [tuple(r) for r in rows] == [
        ("user", "Hello.", 0),
        ("assistant", first.text, 0),
        ("user", long_text, 1),
        ("assistant", "", 0),  # the empty reply stays on record with its stop reason
    ]


def test_a_regen_beyond_the_budget_offers_drops_for_the_message_it_answers(bundled_phone):
    # The last message alone (~3000 tokens) + 1500 to generate cannot fit 4096 tokens,
    # however many older turns go: no drop is offered. (The first, short message would fit:
    # the offer must be worked out for the message being answered, the last.)
    _, dev = bundled_phone()
    s = open_chat_session(dev, engine="process", settings=SamplerSettings(max_tokens=8))
    try:
        s.send("Hi")
        long_text = "word " * 3000
        s.send(long_text)
        s.update_settings(max_tokens=1500)
        with pytest.raises(ContextBudgetError) as info:
            s.regenerate()
        assert info.value.drop_turns is None
        assert info.value.hint.startswith("Shorten the message")
    finally:
        s.end()
