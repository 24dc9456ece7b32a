"""The context a chat has used, turn after turn, against an independent count: tiktoken on
Qwen's own ranks (shares no code with qwenchat's tokenizer.json) over prompts written out
here by hand in ChatML. Through the emulated phone: a first turn, a follow-up that sends
only its own turn, and a rebuild after a new system prompt."""

from __future__ import annotations

import pytest
from tiktoken_oracle import qwen_tiktoken_count

from qwenchat.chat.session import PromptMode, SamplerSettings, open_chat_session
from qwenchat.errors import UsageError


@pytest.fixture(scope="module")
def count():
    return qwen_tiktoken_count


def test_ctx_used_adds_up_across_first_turn_followup_and_rebuild(bundled_phone, count):
    _, dev = bundled_phone()
    s = open_chat_session(dev, settings=SamplerSettings(max_tokens=16))
    assert (s.ctx_size, s.max_tokens, s.bos_tokens) == (4096, 16, 0)

    first = s.send("Tell me about Snapdragon.")
    p1 = count("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
               "<|im_start|>user\nTell me about Snapdragon.<|im_end|>\n<|im_start|>assistant\n")
    g1 = count(first.text)
    assert first.mode is PromptMode.REBUILD
    assert first.figures.counted_prompt_tokens == p1
    assert first.figures.genie_prompt_tokens == p1
    assert first.figures.genie_generated_tokens == g1 == 16
    assert first.figures.ctx_used == p1 + g1
    assert first.figures.ctx_size == 4096

    # A follow-up: only the new turn, plus the <|im_end|> Genie pushes before it.
    second = s.send("And the NPU?")
    p2 = count("\n<|im_start|>user\nAnd the NPU?<|im_end|>\n<|im_start|>assistant\n") + 1
    g2 = count(second.text)
    assert second.mode is PromptMode.FOLLOWUP
    assert second.figures.genie_prompt_tokens == p2
    assert second.figures.ctx_used == p1 + g1 + p2 + g2

    # The same system prompt again changes nothing: still a follow-up.
    s.set_system("")
    s.set_system(None)
    third = s.send("Go on.")
    p3 = count("\n<|im_start|>user\nGo on.<|im_end|>\n<|im_start|>assistant\n") + 1
    assert third.mode is PromptMode.FOLLOWUP
    assert third.figures.ctx_used == second.figures.ctx_used + p3 + count(third.text)

    # A new system prompt: the whole conversation again, counted from zero.
    s.set_system("Answer briefly.")
    fourth = s.send("Why?")
    whole = (
        "<|im_start|>system\nAnswer briefly.<|im_end|>\n"
        f"<|im_start|>user\nTell me about Snapdragon.<|im_end|>\n"
        f"<|im_start|>assistant\n{first.text}<|im_end|>\n"
        f"<|im_start|>user\nAnd the NPU?<|im_end|>\n"
        f"<|im_start|>assistant\n{second.text}<|im_end|>\n"
        f"<|im_start|>user\nGo on.<|im_end|>\n"
        f"<|im_start|>assistant\n{third.text}<|im_end|>\n"
        "<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert fourth.mode is PromptMode.REBUILD
    assert fourth.figures.counted_prompt_tokens == count(whole)
    assert fourth.figures.ctx_used == count(whole) + count(fourth.text)
    assert s.turns_done == 4


def test_clear_drop_and_transcript_keep_the_conversation_straight(bundled_phone):
    _, dev = bundled_phone()
    s = open_chat_session(dev, system="Be short.")
    assert s.max_tokens == 512  # no --max-tokens and none in the bundle's config
    with pytest.raises(UsageError, match="nothing to regenerate yet"):
        s.regenerate()
    with pytest.raises(UsageError, match="no reply to continue"):
        s.continue_reply()
    s.update_settings(max_tokens=8)
    calls = []

    def gone_terminal(text):
        calls.append(text)
        raise OSError(5, "EIO")  # the terminal went away (SIGHUP)

    a = s.send("One?", on_text=gone_terminal)
    assert len(calls) == 1  # not called again after the terminal failed
    assert a.figures.genie_generated_tokens == 8 and a.text == s.messages[-1].content
    s.send("Two?")
    assert [m.role for m in s.messages] == ["user", "assistant"] * 2
    s.drop_oldest(1)
    assert [(m.role, m.content) for m in s.messages][0] == ("user", "Two?")
    assert s.send("Three?").mode is PromptMode.REBUILD  # dropping invalidates the state
    t = s.transcript()
    assert (t["system"], t["model"], t["settings"]) == ("Be short.", "qwen2-7b-instruct",
                                                       {"max_tokens": 8})
    assert [m["content"] for m in t["messages"] if m["role"] == "user"] == ["Two?", "Three?"]
    assert t["messages"][1]["stop_reason"] == "max_tokens"
    assert t["device"]["simulated"] is True
    old_id = s.session_id
    s.clear()
    assert s.session_id != old_id and s.messages == [] and s.last is None
    assert s.system == "Be short." and s.settings.max_tokens == 8
    again = s.send("One?")
    assert again.mode is PromptMode.REBUILD
    assert again.figures.counted_prompt_tokens == a.figures.counted_prompt_tokens
    s.end()
