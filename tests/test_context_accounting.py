"""Context accounting across chat turns on the emulated phone, judged by counts made here.

qwenchat counts with Hugging Face ``tokenizers`` over its built tokenizer.json and renders
prompts with its chat templates; the simulated Genie counts with its own BPE
(``genie_sim.tokenizer``). The oracle here shares code with neither: the ChatML transcript
is written out by hand below, and counted (ids too) with tiktoken over dashscope's
qwen.tiktoken, the pre-tokenizer pattern and control-token ids written out here.

After every turn: the "ctx used" figure (the figures line and the session's state), Genie's
own prompt/generated counts (its profile) and the dialog state Genie saved on the phone
(n_past and the very token ids in its "KV cache") must all equal the count of the
hand-written transcript. At the context's end, a follow-up (and a first message) that
needs one token more than the context is refused before anything reaches the phone, with
the documented offer to drop the oldest turns; one that needs exactly the context is sent,
and Genie sees the prompt size the budget assumed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from pathlib import Path

import pytest

from qwenchat.chat.plan import ContextBudgetError
from qwenchat.chat.render import figures_line
from qwenchat.chat.session import PromptMode, SamplerSettings, StopReason, open_chat_session

CTX = 4096  # genie_configs/qwen2_7b_instruct.json: dialog.context.size
MAX_TOKENS = 128
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CONTROL = {ENDOFTEXT: 151643, IM_START: 151644, IM_END: 151645}
PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
SYSTEM = "You are a terse assistant. 回答要简短。"
DEFAULT_SYSTEM = "You are a helpful assistant."  # Qwen2's template, when none is given


# ---- the oracle ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle():
    """Qwen2's ids as tiktoken computes them on Qwen's own ranks (NFC first, as Qwen's
    tokenizer.json normalizes; control tokens matched in the text)."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    spec = importlib.util.find_spec("dashscope")
    assert spec is not None and spec.submodule_search_locations
    [ranks_file] = [
        p
        for folder in spec.submodule_search_locations
        if (p := Path(folder) / "resources" / "qwen.tiktoken").is_file()
    ]
    enc = tiktoken.Encoding(
        "qwen2-oracle",
        pat_str=PATTERN,
        mergeable_ranks=load_tiktoken_bpe(str(ranks_file)),
        special_tokens={},
    )
    split = re.compile("(" + "|".join(map(re.escape, CONTROL)) + ")")

    def encode(text: str) -> list[int]:
        ids: list[int] = []
        for piece in split.split(text):
            if piece in CONTROL:
                ids.append(CONTROL[piece])
            elif piece:
                ids += enc.encode_ordinary(unicodedata.normalize("NFC", piece))
        return ids

    return encode


def turn(role: str, text: str) -> str:
    return f"{IM_START}{role}\n{text}{IM_END}\n"


def rebuild_prompt(system: str | None, pairs: list[tuple[str, str]], user: str) -> str:
    """The whole conversation as ChatML, ending on the open assistant turn."""
    out = turn("system", DEFAULT_SYSTEM if system is None else system)
    for asked, answered in pairs:
        out += turn("user", asked) + turn("assistant", answered)
    return out + turn("user", user) + f"{IM_START}assistant\n"


def followup_prompt(user: str) -> str:
    """What follows a restored state: Genie pushes <|im_end|> itself, then this."""
    return f"\n{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"


def kv_transcript(system: str | None, pairs: list[tuple[str, str]]) -> str:
    """What the phone's context holds after the last reply: everything up to the reply's
    last token (its <|im_end|> comes with the next query)."""
    *earlier, (asked, answered) = pairs
    return rebuild_prompt(system, earlier, asked) + answered


def phone_state(emu, session) -> dict:
    path = session.engine.state_path(session.session_id) + "/genie_dialog_state.json"
    return json.loads(Path(emu.phone.host_path(path)).read_text())


def sized_message(oracle, tokens_of, target: int) -> str:
    """A user message for which ``tokens_of(message)`` is exactly ``target`` tokens by the
    oracle (" apple" is one token each, the rest of the prompt fixed)."""
    base = tokens_of("Summarize:")
    n = target - base
    assert n > 0, (target, base)
    message = "Summarize:" + " apple" * n
    got = tokens_of(message)
    assert got == target, f"the filler is not one token a word: {got} != {target}"
    return message


# ---- every turn ------------------------------------------------------------------------------


@pytest.mark.parametrize("system", [SYSTEM, None], ids=["system", "default-system"])
def test_ctx_used_after_each_turn_equals_the_count_of_the_hand_written_transcript(
    bundled_phone, oracle, system
):
    emu, dev = bundled_phone()
    session = open_chat_session(
        dev, system=system, settings=SamplerSettings(max_tokens=MAX_TOKENS), warm=False
    )
    asks = [
        "Hello! Tell me about Snapdragon.",
        "你好，NPU 是什么？🙂 e\u0301 café",
        "Write 30 tokens about code:\n\tdef f(x): return x**2  # 1234567890",
        "And   spaces\n\n\nnewlines?",
    ]
    pairs: list[tuple[str, str]] = []
    for i, asked in enumerate(asks):
        before = oracle(kv_transcript(system, pairs)) if pairs else []
        result = session.send(asked)
        assert result.stop is StopReason.EOS, result.error
        assert result.mode is (PromptMode.REBUILD if i == 0 else PromptMode.FOLLOWUP)
        pairs.append((asked, result.text))

        expected_ids = oracle(kv_transcript(system, pairs))
        used = len(expected_ids)
        sent = rebuild_prompt(system, [], asked) if i == 0 else IM_END + followup_prompt(asked)
        prompt_tokens = len(oracle(sent))
        reply_tokens = len(oracle(result.text))
        assert used == len(before) + prompt_tokens + reply_tokens  # the oracle is additive here

        f = result.figures
        # What qwenchat shows and keeps.
        assert f.ctx_used == used and session.state.tokens == used
        assert f"ctx {used}/{CTX}" in figures_line(result)
        assert f.counted_prompt_tokens == prompt_tokens
        # What Genie reported in its profile.
        assert f.genie_prompt_tokens == prompt_tokens
        assert f.genie_generated_tokens == reply_tokens
        # What Genie holds: its saved state's position and the very ids of its context.
        state = phone_state(emu, session)
        assert state["n_past"] == used
        assert state["tokens"] == expected_ids


# ---- at the context's end --------------------------------------------------------------------


def test_a_followup_one_token_over_the_context_is_refused_and_one_that_just_fits_is_sent(
    bundled_phone, oracle
):
    emu, dev = bundled_phone()
    session = open_chat_session(
        dev, system=SYSTEM, settings=SamplerSettings(max_tokens=MAX_TOKENS), warm=False
    )
    first = session.send("Hello there.")
    assert first.stop is StopReason.EOS, first.error
    pairs = [("Hello there.", first.text)]
    used = len(oracle(kv_transcript(SYSTEM, pairs)))
    assert session.state.tokens == used

    def followup_tokens(message: str) -> int:
        return len(oracle(IM_END + followup_prompt(message)))

    room = CTX - used - MAX_TOKENS  # prompt tokens a follow-up may take
    over = sized_message(oracle, followup_tokens, room + 1)
    fits = sized_message(oracle, followup_tokens, room)

    # One token over: refused before anything is sent; the offer is to drop the oldest turn
    # (the rebuilt prompt without it fits, by the oracle's count).
    with pytest.raises(ContextBudgetError) as refused:
        session.send(over)
    assert refused.value.needed == CTX + 1 and refused.value.ctx_size == CTX
    rebuilt_without_first = len(oracle(rebuild_prompt(SYSTEM, [], over)))
    assert rebuilt_without_first + MAX_TOKENS <= CTX
    assert refused.value.drop_turns == 1
    assert [m.content for m in session.messages] == ["Hello there.", first.text]
    assert phone_state(emu, session)["n_past"] == used  # Genie never ran
    assert session.state.tokens == used and session.state.valid

    # Exactly the context: sent as a follow-up; Genie prefills what the budget assumed.
    result = session.send(fits)
    assert result.stop is StopReason.EOS, result.error
    assert result.mode is PromptMode.FOLLOWUP
    assert result.figures.genie_prompt_tokens == room
    pairs.append((fits, result.text))
    after = len(oracle(kv_transcript(SYSTEM, pairs)))
    assert after == used + room + len(oracle(result.text)) <= CTX
    assert result.figures.ctx_used == after == phone_state(emu, session)["n_past"]

    # Now any follow-up is over; taking the documented offer (drop the oldest turns)
    # rebuilds a prompt that fits, of the size the oracle predicts.
    with pytest.raises(ContextBudgetError) as full:
        session.send("One more?")
    drop = full.value.drop_turns
    assert drop is not None
    want_drop = next(
        k
        for k in range(1, len(pairs) + 1)
        if len(oracle(rebuild_prompt(SYSTEM, pairs[k:], "One more?"))) + MAX_TOKENS <= CTX
    )
    assert drop == want_drop
    session.drop_oldest(drop)
    again = session.send("One more?")
    assert again.mode is PromptMode.REBUILD and again.stop is StopReason.EOS, again.error
    assert again.figures.genie_prompt_tokens == len(
        oracle(rebuild_prompt(SYSTEM, pairs[drop:], "One more?"))
    )


def test_a_first_message_one_token_over_is_refused_and_one_that_just_fits_is_sent(
    bundled_phone, oracle
):
    emu, dev = bundled_phone()
    session = open_chat_session(
        dev, system=SYSTEM, settings=SamplerSettings(max_tokens=MAX_TOKENS), warm=False
    )

    def whole(message: str) -> int:
        return len(oracle(rebuild_prompt(SYSTEM, [], message)))

    room = CTX - MAX_TOKENS
    with pytest.raises(ContextBudgetError) as refused:
        session.send(sized_message(oracle, whole, room + 1))
    assert refused.value.needed == CTX + 1 and refused.value.drop_turns is None
    assert session.messages == [] and not session.engine.has_dialog(session.session_id)

    fits = sized_message(oracle, whole, room)
    result = session.send(fits)
    assert result.stop is StopReason.EOS and result.mode is PromptMode.REBUILD, result.error
    assert result.figures.genie_prompt_tokens == room == result.figures.counted_prompt_tokens
    used = len(oracle(kv_transcript(SYSTEM, [(fits, result.text)])))
    assert result.figures.ctx_used == used == phone_state(emu, session)["n_past"]
