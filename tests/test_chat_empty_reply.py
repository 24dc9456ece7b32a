"""A reply that finished empty is still a turn of the conversation.

Genie can end a reply before printing anything: the model's first token is its end of turn, or
a stop sequence of the bundle's genie_config.json matches at once. The emulated phone does the
second for real: the bundle pushed here carries ``"stop-sequence": ["SIMULATED"]`` and the
simulated Genie's reply begins with that word, so it stops at once, prints nothing, exits 0
and saves its dialog state, as a finished reply does.

Such a turn is in the phone's dialog state, so it must stay in the transcript (the follow-up
continues that state; a rebuild must send the same turns), and `/regen` must be able to
replace it (`/continue` refuses it and points there). Only replies that did not finish (cut,
timed out, failed, lost) and printed nothing leave the conversation.
"""

from __future__ import annotations

import pytest
from fixtures_bundle import export_with_config

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.push import push_assets
from qwenchat.chat.outcome import UNFINISHED
from qwenchat.chat.session import PromptMode, SamplerSettings, StopReason, open_chat_session
from qwenchat.errors import UsageError
from qwenchat.layout import PhoneLayout
from qwenchat.store import open_store

STOP = "SIMULATED"  # the first word of every reply of the simulated Genie


@pytest.fixture
def phone_with_stop_sequence(bundled_phone, synthetic_bundle, tmp_path):
    """An export that brings its own genie_config.json, with a stop sequence, pushed as
    push-assets does (the export's own config is kept)."""

    def stop(config: dict) -> None:
        config["dialog"]["stop-sequence"] = [STOP]

    folder = export_with_config(tmp_path / "export-with-stop", synthetic_bundle, stop)
    emu, dev = bundled_phone(push=False)
    plan = plan_bundle(folder, synthetic_bundle.qairt, "SM8750")
    push_assets(dev, plan, PhoneLayout(), overlap=False)
    return dev


def test_a_reply_that_finished_empty_stays_a_turn_regen_replaces_it(
    phone_with_stop_sequence, tmp_path
):
    with open_store(tmp_path / "store.db") as store:
        s = open_chat_session(phone_with_stop_sequence, store=store)
        assert s.engine.bundle.config.stop_sequence == [STOP]

        first = s.send("Hello there")
        assert first.text == ""
        assert first.ok and first.stop not in UNFINISHED, first  # Genie finished, exit 0
        assert first.figures.genie_generated_tokens >= 1  # it generated the stop sequence
        turn = [
            {"role": "user", "content": "Hello there", "stop_reason": None},
            {"role": "assistant", "content": "", "stop_reason": first.stop.value},
        ]
        assert s.transcript()["messages"] == turn

        with pytest.raises(UsageError, match="the last reply is empty") as refused:
            s.continue_reply()
        assert "/regen" in (refused.value.hint or "")

        again = s.regenerate()  # replaces the empty reply: still one turn
        assert again.mode is PromptMode.REBUILD and again.text == ""
        assert s.transcript()["messages"] == turn

        # The phone's state holds the turn: the next message continues it.
        second = s.send("Still there?")
        assert second.mode is PromptMode.FOLLOWUP and second.text == ""
        assert s.transcript()["messages"] == [
            *turn,
            {"role": "user", "content": "Still there?", "stop_reason": None},
            {"role": "assistant", "content": "", "stop_reason": second.stop.value},
        ]
        assert second.stop in (StopReason.EOS, StopReason.STOP_SEQUENCE)


def test_replies_cut_before_their_first_word_leave_the_chat_even_from_the_first_turn(
    bundled_phone, phone_fault
):
    import threading

    emu, dev = bundled_phone()
    phone_fault(emu, "genie-hang-before-first-token")
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=8))
    try:
        for text in ("first", "second"):
            timer = threading.Timer(2.0, s.cancel)
            timer.start()
            result = s.send(text)
            timer.join()
            assert result.stop is StopReason.CUT and not result.text
        # Each empty reply left; the user's words stay, to be answered by the next reply.
        assert [(m.role, m.content) for m in s.messages] == [("user", "first"), ("user", "second")]
    finally:
        s.end()
