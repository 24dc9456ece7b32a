"""A bundle whose genie_config.json names a bos-token (qai-hub-models' generator writes
151643 for Qwen2) makes Genie prepend that token to every query: each prompt is one token
longer than its text, and every count the chat makes must say so, the first turn's and a
rebuild's (/regen) alike. Judged by tiktoken's count of the ChatML written out here, and by
the simulated Genie's own count (its tokenizer shares no code with qwenchat's)."""

from __future__ import annotations

import pytest
from fixtures_bundle import export_with_config
from tiktoken_oracle import qwen_tiktoken_count

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.push import push_assets
from qwenchat.chat.session import PromptMode, SamplerSettings, open_chat_session
from qwenchat.layout import PhoneLayout

ASK = "Hello there"
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    f"<|im_start|>user\n{ASK}<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture
def phone_with_bos(bundled_phone, synthetic_bundle, tmp_path):
    def bos(config: dict) -> None:
        config["dialog"]["context"]["bos-token"] = 151643

    folder = export_with_config(tmp_path / "export-with-bos", synthetic_bundle, bos)
    _, dev = bundled_phone(push=False)
    push_assets(dev, plan_bundle(folder, synthetic_bundle.qairt, "SM8750"), PhoneLayout(),
                overlap=False)  # fmt: skip
    return dev


def test_every_prompt_count_includes_the_configured_bos(phone_with_bos):
    text_tokens = qwen_tiktoken_count(PROMPT)
    # Odd, so a count that or-ed the BOS in (n | 1) instead of adding it would be n.
    assert text_tokens % 2 == 1
    s = open_chat_session(phone_with_bos, settings=SamplerSettings(max_tokens=8))
    try:
        assert s.engine.bundle.config.bos_token == 151643
        first = s.send(ASK)
        assert first.figures.counted_prompt_tokens == text_tokens + 1
        assert first.figures.genie_prompt_tokens == text_tokens + 1
        again = s.regenerate()  # the same prompt, now through the rebuild path
        assert again.mode is PromptMode.REBUILD
        assert again.figures.counted_prompt_tokens == text_tokens + 1
        assert again.figures.genie_prompt_tokens == text_tokens + 1
    finally:
        s.end()
