"""The chat session's decisions, with the real Qwen2 tokenizer and template (no phone)."""

from __future__ import annotations

import pytest

from qwenchat.chat.session import (
    ChatMessage,
    ContextBudgetError,
    PhoneState,
    PromptMode,
    SamplerSettings,
    StopReason,
    decide_stop_reason,
    full_prompt,
    parse_set_command,
    plan_turn,
    split_turns,
    turns_to_drop,
)
from qwenchat.errors import UsageError
from qwenchat.models.template import render_followup


@pytest.fixture(scope="module")
def counter():
    from qwenchat.models.tokens import default_counter

    return default_counter()


def _history(n: int, words: int = 5) -> list[ChatMessage]:
    out = []
    for i in range(n):
        out.append(ChatMessage("user", f"question {i} " + "word " * words))
        out.append(ChatMessage("assistant", f"answer {i} " + "word " * words, "eos"))
    return out


# ----- /set and settings


def test_set_command_parses_and_normalises_keys():
    assert parse_set_command("temp=0.7 top-k=40 top_p=0.9 seed=3 max_tokens=64") == {
        "temp": 0.7,
        "top_k": 40,
        "top_p": 0.9,
        "seed": 3,
        "max_tokens": 64,
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("temp=hot", "temp must be a number"),
        ("top_k=0", "top_k must be at least 1"),
        ("top_p=1.5", "top_p must be in (0, 1]"),
        ("max_tokens=99999", "max_tokens must be between"),
        ("seed=-1", "seed must be between"),
        ("colour=red", "unknown setting"),
        ("temp", "expects key=value"),
        ("", "needs key=value"),
        ("top_k=2.5", "top_k must be a whole number"),
    ],
)
def test_set_command_rejects_bad_values_with_one_line(text, fragment):
    with pytest.raises(UsageError) as err:
        parse_set_command(text)
    assert fragment in err.value.message
    assert "\n" not in err.value.message


def test_settings_default_and_update():
    s = SamplerSettings()
    assert s.is_default and s.as_dict() == {}
    s2 = s.updated(temp=0.2)
    assert not s2.is_default and s2.as_dict() == {"temp": 0.2}
    assert s.is_default  # frozen: the old value is unchanged


# ----- stop reasons


def test_stop_reason_max_tokens_from_generated_count():
    assert decide_stop_reason("abc", 64, 64, []) is StopReason.MAX_TOKENS
    assert decide_stop_reason("abc", 63, 64, []) is StopReason.EOS


def test_stop_reason_stop_sequence_and_eos():
    assert decide_stop_reason("a b STOP", 3, 64, ["STOP"]) is StopReason.STOP_SEQUENCE
    assert decide_stop_reason("a b", 3, 64, ["STOP"]) is StopReason.EOS
    assert decide_stop_reason("a b", None, 64, None) is StopReason.EOS


def test_a_reply_that_filled_the_context_is_context_full_not_eos():
    """Genie ends with [END] and exit 0 when the context fills mid-reply (issue 14.5)."""
    assert (
        decide_stop_reason("abc", 40, 512, [], ctx_used=4096, ctx_size=4096)
        is StopReason.CONTEXT_FULL
    )
    # Even when the count also reached max tokens: /continue could not go on anyway.
    assert (
        decide_stop_reason("abc", 64, 64, [], ctx_used=4096, ctx_size=4096)
        is StopReason.CONTEXT_FULL
    )
    assert decide_stop_reason("abc", 40, 512, [], ctx_used=4095, ctx_size=4096) is StopReason.EOS


def _record(outcome, text="", **fields):
    from qwenchat.genie.events import ReplyText
    from qwenchat.runner.record import QueryRecord, TimedEvent

    record = QueryRecord(engine="process", started_at=1.0, outcome=outcome, **fields)
    if text:
        record.events.append(TimedEvent(2.0, ReplyText(text)))
    return record


@pytest.mark.parametrize(
    ("outcome", "text", "stop", "error"),
    [
        ("cut", "partial", "cut", None),
        ("device_lost", "partial", "device_lost", "lost the link"),
        ("timed_out", "", "timed_out", "lost the link"),
        ("context_exceeded", "partial", "context_full", None),
        ("context_exceeded", "", "failed", "the conversation no longer fits the model's context"),
        ("failed", "", "failed", "lost the link"),
    ],
)
def test_every_way_a_reply_ends_has_its_stop_reason(outcome, text, stop, error):
    from qwenchat.chat.outcome import ReplyFigures, stop_from_record
    from qwenchat.runner.record import Outcome

    record = _record(Outcome(outcome), text, error="lost the link")
    got, message, _ = stop_from_record(
        record, text, ReplyFigures(), max_tokens=64, stop_sequences=None
    )
    assert got.value == stop
    assert message == error


# ----- planning


def test_first_turn_is_a_full_rebuild_with_qwen2_template(counter):
    plan = plan_turn(
        system=None,
        history=[],
        user_text="hi",
        state=PhoneState(),
        state_on_phone=False,
        counter=counter,
        max_tokens=64,
    )
    assert plan.mode is PromptMode.REBUILD and not plan.restore
    assert plan.prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert plan.prompt_tokens == counter.count(plan.prompt)


def test_followup_sends_only_the_new_turn(counter):
    history = _history(3)
    state = PhoneState(valid=True, tokens=300, system=None)
    plan = plan_turn(
        system=None,
        history=history,
        user_text="and then?",
        state=state,
        state_on_phone=True,
        counter=counter,
        max_tokens=64,
    )
    assert plan.mode is PromptMode.FOLLOWUP and plan.restore
    assert plan.prompt == render_followup("and then?")
    assert plan.prompt.startswith("\n<|im_start|>user\n")
    # Genie pushes <|im_end|> itself: one more token than the text.
    assert plan.prompt_tokens == counter.count(plan.prompt) + 1
    assert plan.ctx_after_prompt == 300 + plan.prompt_tokens
    full = full_prompt(None, history + [ChatMessage("user", "and then?")])
    assert plan.prompt_tokens < counter.count(full) / 3


@pytest.mark.parametrize(
    "state, on_phone, system",
    [
        (PhoneState(valid=True, tokens=100, system=None), False, None),  # state file lost
        (PhoneState(valid=False, tokens=100, system=None), True, None),  # cut reply / edited
        (PhoneState(valid=True, tokens=100, system=None), True, "Be terse."),  # system changed
    ],
)
def test_rebuild_when_the_state_cannot_be_used(counter, state, on_phone, system):
    history = _history(2)
    plan = plan_turn(
        system=system,
        history=history,
        user_text="next",
        state=state,
        state_on_phone=on_phone,
        counter=counter,
        max_tokens=64,
    )
    assert plan.mode is PromptMode.REBUILD
    assert plan.prompt == full_prompt(system, history + [ChatMessage("user", "next")])
    if system:
        assert plan.prompt.startswith(f"<|im_start|>system\n{system}<|im_end|>")


def test_budget_counts_before_sending_and_offers_to_drop(counter):
    history = _history(6, words=120)
    tokens = counter.count(full_prompt(None, history))
    ctx = tokens + 100  # the history fits, the next turn + max tokens does not
    with pytest.raises(ContextBudgetError) as err:
        plan_turn(
            system=None,
            history=history,
            user_text="one more",
            state=PhoneState(valid=True, tokens=tokens, system=None),
            state_on_phone=True,
            counter=counter,
            max_tokens=200,
            ctx_size=ctx,
        )
    exc = err.value
    assert exc.ctx_size == ctx and exc.needed > ctx
    assert exc.drop_turns is not None and exc.drop_turns >= 1
    # Dropping exactly that many turns fits; one fewer does not.
    kept = [m for t in split_turns(history)[exc.drop_turns :] for m in t]
    fits = counter.count(full_prompt(None, kept + [ChatMessage("user", "one more")])) + 200
    assert fits <= ctx
    if exc.drop_turns > 1:
        kept = [m for t in split_turns(history)[exc.drop_turns - 1 :] for m in t]
        too_big = counter.count(full_prompt(None, kept + [ChatMessage("user", "one more")]))
        assert too_big + 200 > ctx


def test_a_message_too_long_by_itself_cannot_be_fixed_by_dropping(counter):
    assert turns_to_drop(None, _history(2), "word " * 500, counter, 64, ctx_size=300) is None


def test_split_turns_groups_replies_with_their_question():
    history = [
        ChatMessage("user", "a"),
        ChatMessage("assistant", "b"),
        ChatMessage("assistant", "b2"),
        ChatMessage("user", "c"),
    ]
    assert [[m.content for m in t] for t in split_turns(history)] == [["a", "b", "b2"], ["c"]]
