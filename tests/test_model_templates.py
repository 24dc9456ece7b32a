"""Every model's chat template, judged by strings written out by hand from each model's
documented format (see qwenchat/models/templates/PROVENANCE.md), never by the code under test."""

from __future__ import annotations

import pytest

from qwenchat.models import get_model
from qwenchat.models.template import Message, render_chat, render_continuation, render_followup

QWEN25 = get_model("qwen2.5-7b-instruct")
LLAMA2 = get_model("llama-v2-7b-chat")
BAICHUAN2 = get_model("baichuan2-7b")

QWEN25_SYSTEM = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n"
)
TURNS = [Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "More?")]


@pytest.mark.parametrize(
    ("model", "messages", "expected"),
    [
        (QWEN25, [Message("user", "Hi")],
         QWEN25_SYSTEM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        (QWEN25, [Message("system", "Be brief."), Message("user", "Hi")],
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
         "<|im_start|>assistant\n"),
        (QWEN25, TURNS,
         QWEN25_SYSTEM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
         "<|im_start|>user\nMore?<|im_end|>\n<|im_start|>assistant\n"),
        (LLAMA2, [Message("user", "Hi")], "<s>[INST] Hi [/INST]"),
        (LLAMA2, [Message("system", "Be brief."), Message("user", "Hi")],
         "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"),
        (LLAMA2, TURNS, "<s>[INST] Hi [/INST] Hello! </s><s>[INST] More? [/INST]"),
        (BAICHUAN2, [Message("user", "Hi")], "<reserved_106>Hi<reserved_107>"),
        (BAICHUAN2, TURNS, "<reserved_106>Hi<reserved_107>Hello!</s><reserved_106>More?<reserved_107>"),
        (BAICHUAN2, [Message("system", "Be brief."), Message("user", "Hi")],
         "Be brief.<reserved_106>Hi<reserved_107>"),
    ],
)
def test_each_model_renders_its_own_format(model, messages, expected):
    assert render_chat(messages, model=model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (QWEN25, "\n<|im_start|>user\nMore?<|im_end|>\n<|im_start|>assistant\n"),
        (LLAMA2, "<s>[INST] More? [/INST]"),
        (BAICHUAN2, "<reserved_106>More?<reserved_107>"),
    ],
)
def test_a_follow_up_is_what_follows_the_end_of_turn_genie_pushes(model, expected):
    assert render_followup("More?", model=model) == expected
    # The whole conversation = the earlier turns up to their end of turn + the follow-up.
    whole = render_chat(TURNS, model=model)
    earlier = render_chat(TURNS[:2], add_generation_prompt=False, model=model)
    cut = earlier.rindex(model.chat.end_of_turn) + len(model.chat.end_of_turn)
    assert whole == earlier[:cut] + expected


def test_a_cut_reply_is_continued_with_its_turn_left_open():
    messages = [Message("user", "Count"), Message("assistant", "One, two")]
    assert render_continuation(messages, model=LLAMA2) == "<s>[INST] Count [/INST] One, two"
    assert render_continuation(messages, model=BAICHUAN2) == "<reserved_106>Count<reserved_107>One, two"
    assert render_continuation(messages, model=QWEN25) == (
        QWEN25_SYSTEM + "<|im_start|>user\nCount<|im_end|>\n<|im_start|>assistant\nOne, two"
    )


def test_llama_refuses_turns_that_do_not_alternate():
    from qwenchat.errors import ConfigError

    with pytest.raises(ConfigError):
        render_chat([Message("user", "a"), Message("user", "b")], model=LLAMA2)
