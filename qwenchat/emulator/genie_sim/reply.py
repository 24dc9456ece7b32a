"""The simulated model's answer: deterministic text that shows what it received.

The reply depends only on the sampler settings (seed, temp, top-k, top-p), the prompt token
count and the last user message, so a benchmark that changes the seed per trial gets
different replies and a test can predict one. It mixes Chinese and an emoji so multi-byte
streaming is exercised: byte-level BPE splits those characters across tokens, and Genie (and
this sim) writes a character only once all of its bytes have been produced.

Length: 20-80 tokens for the seed, unless the last user message asks for more ("N tokens",
"N words", or the words long / essay / story / detail: 300-600 tokens). It ends on EOS at
that length or at max-num-tokens, whichever comes first.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FILLER = (
    "This reply comes from the qwenchat emulator, not from Qwen2-7B-Instruct.",
    "The emulated phone streams one token at a time, as Genie does.",
    "这是模拟的回复，没有真正的模型在运行。",
    "Multi-byte characters stream correctly: 你好，世界！🙂",
    "Prefill runs in chunks of 128 tokens on the emulated NPU.",
    "Nothing here was computed by a neural network. 🤖",
    "种子和温度决定了这段文字。",
    "Timing follows the device profile, scaled by the emulator's time scale.",
    "Ask for a long essay to get a longer answer.",
    "The numbers in the profile are measured, not copied from a table.",
)
QUOTE_CHARS = 60
_ASK_N = re.compile(r"(\d{1,6})\s*(tokens?|words?)\b", re.IGNORECASE)
_ASK_LONG = re.compile(r"\b(long|essay|story|detail(?:ed)?)\b", re.IGNORECASE)


def last_user_message(prompt: str) -> str:
    """The text between the last ``<|im_start|>user\\n`` and its ``<|im_end|>`` (ChatML)."""
    start = prompt.rfind("<|im_start|>user\n")
    if start < 0:
        return prompt
    body = prompt[start + len("<|im_start|>user\n") :]
    end = body.find("<|im_end|>")
    return body if end < 0 else body[:end]


def open_assistant_turn(prompt: str) -> str:
    """The partial reply a ChatML prompt leaves open for Genie to continue ('' if none)."""
    start = prompt.rfind("<|im_start|>assistant\n")
    if start < 0:
        return ""
    tail = prompt[start + len("<|im_start|>assistant\n") :]
    return tail if tail.strip() and "<|im_end|>" not in tail else ""


def quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1] + "…"


def target_tokens(message: str, rng: random.Random) -> int:
    m = _ASK_N.search(message)
    if m:
        n = int(m.group(1))
        return max(1, n if m.group(2).lower().startswith("token") else n * 4 // 3)
    if _ASK_LONG.search(message):
        return rng.randint(300, 600)
    return rng.randint(20, 80)


@dataclass(frozen=True)
class Sampling:
    seed: int
    temp: float
    top_k: int
    top_p: float


def reply_text(
    prompt: str, n_prompt_tokens: int, sampling: Sampling, approx_tokens: int
) -> tuple[str, list[int]]:
    """Enough text for ``approx_tokens`` tokens, and the character offsets where its
    sentences end (the reply stops at one of them, so an EOS ends a sentence)."""
    rng = random.Random(f"{sampling.seed}|{sampling.temp}|{sampling.top_k}|{sampling.top_p}")
    if open_assistant_turn(prompt):
        # A continuation (the assistant turn left open): go on from where it stopped
        # instead of starting the reply again.
        text = " (SIMULATED, continued)"
    else:
        said = quote(last_user_message(prompt))
        text = f'SIMULATED reply (prompt {n_prompt_tokens} tokens): you said "{said}".'
    ends = [len(text)]
    # ~3.5 characters per token for this mix: overshoot, then cut by tokens.
    while len(text) < approx_tokens * 6 + 40:
        text += " " + rng.choice(FILLER)
        ends.append(len(text))
    return text, ends


def reply_rng(sampling: Sampling) -> random.Random:
    return random.Random(f"len|{sampling.seed}|{sampling.temp}|{sampling.top_k}|{sampling.top_p}")


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The raw bytes one token stands for (a piece of a UTF-8 character, possibly); the
    simulation's own tokenizer (``genie_sim.tokenizer``) knows each vocabulary's rules."""
    return tokenizer.token_bytes(token_id)


def complete_utf8_prefix(buf: bytes) -> int:
    """Length of the longest prefix of ``buf`` that does not end inside a UTF-8 character."""
    n = len(buf)
    # Look back at most 3 bytes for the lead byte of an unfinished character.
    for back in range(1, min(4, n) + 1):
        b = buf[n - back]
        if b & 0xC0 == 0x80:  # continuation byte: keep looking for the lead
            continue
        if b & 0x80 == 0:
            return n
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return n if back >= need else n - back
    return n


class Utf8Streamer:
    """Collects token bytes; releases only complete characters (as Genie's callback does)."""

    def __init__(self) -> None:
        self.pending = b""

    def push(self, data: bytes) -> bytes:
        self.pending += data
        cut = complete_utf8_prefix(self.pending)
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out
