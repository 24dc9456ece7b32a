"""Qwen2-7B-Instruct's ChatML rendering.

Expected strings are written out by hand from the ChatML form in docs/genie.md, never taken
from the code under test. Token-level checks use the real Qwen2 tokenizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwenchat.errors import ConfigError, UsageError
from qwenchat.models.template import (
    Message,
    render_chat,
    render_continuation,
    render_followup,
)
from qwenchat.models.tokenizer_build import ensure_qwen2_tokenizer
from qwenchat.models.tokens import TokenCounter

IM_END_ID = 151645

DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


@pytest.fixture(scope="module")
def tokenizer_dir():
    return ensure_qwen2_tokenizer().parent


@pytest.fixture(scope="module")
def counter(tokenizer_dir) -> TokenCounter:
    return TokenCounter(tokenizer_dir / "tokenizer.json")


def test_single_user_turn_gets_the_default_system_line():
    assert render_chat([Message("user", "What is 2+2?")]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_explicit_system_replaces_the_default():
    text = render_chat([Message("system", "Answer in French."), Message("user", "Hi")])
    assert text == (
        "<|im_start|>system\nAnswer in French.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "You are a helpful assistant." not in text


def test_multi_turn():
    messages = [
        Message("user", "Name a colour."),
        Message("assistant", "Blue."),
        Message("user", "Another one?"),
    ]
    assert render_chat(messages) == (
        DEFAULT_SYSTEM + "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\nBlue.<|im_end|>\n"
        "<|im_start|>user\nAnother one?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_without_generation_prompt():
    messages = [Message("user", "Hi"), Message("assistant", "Hello!")]
    assert render_chat(messages, add_generation_prompt=False) == (
        DEFAULT_SYSTEM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    )


def test_content_is_kept_verbatim():
    content = "  line one\n\nline two\t{{ not jinja }} {% raw %}\n"
    assert render_chat([Message("user", content)]) == (
        DEFAULT_SYSTEM + "<|im_start|>user\n" + content + "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_followup_form():
    assert render_followup("And 3+3?") == (
        "\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_continuation_leaves_the_reply_open():
    messages = [Message("user", "Tell a story."), Message("assistant", "Once upon a time, ")]
    assert render_continuation(messages) == (
        DEFAULT_SYSTEM + "<|im_start|>user\nTell a story.<|im_end|>\n"
        "<|im_start|>assistant\nOnce upon a time, "
    )


def test_continuation_needs_an_assistant_last():
    with pytest.raises(UsageError):
        render_continuation([Message("user", "Hi")])
    with pytest.raises(UsageError):
        render_continuation([])


def test_bad_role_and_empty_chat():
    with pytest.raises(UsageError):
        Message("tool", "x")
    with pytest.raises(UsageError):
        render_chat([])


def test_same_text_as_transformers_apply_chat_template(tokenizer_dir):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    conversations = [
        [Message("user", "Hi")],
        [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Yo"),
         Message("user", "你好 😀")],
    ]
    for messages in conversations:
        as_dicts = [{"role": m.role, "content": m.content} for m in messages]
        for gen in (True, False):
            ours = render_chat(messages, add_generation_prompt=gen, tokenizer_dir=tokenizer_dir)
            assert ours == hf.apply_chat_template(as_dicts, tokenize=False, add_generation_prompt=gen)
            assert ours == render_chat(messages, add_generation_prompt=gen)  # built-in copy
    history = [Message("user", "Go on"), Message("assistant", "One, two,")]
    assert render_continuation(history, tokenizer_dir=tokenizer_dir) == hf.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in history],
        tokenize=False,
        continue_final_message=True,
    )


def test_template_from_tokenizer_dir_wins(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "eos_token": "<|im_end|>",
                "chat_template": "{% for m in messages %}[{{ m['role'] }}|{{ m['content'] }}|{{ eos_token }}]{% endfor %}"
                "{% if add_generation_prompt %}>{% endif %}",
            }
        )
    )
    assert render_chat([Message("user", "x")], tokenizer_dir=tmp_path) == "[user|x|<|im_end|>]>"
    # A folder without a template falls back to Qwen2's built-in one.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert render_chat([Message("user", "x")], tokenizer_dir=empty).startswith(DEFAULT_SYSTEM)


def test_broken_config_is_a_config_error(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{oops")
    with pytest.raises(ConfigError):
        render_chat([Message("user", "x")], tokenizer_dir=tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% for %}"}))
    with pytest.raises(ConfigError):
        render_chat([Message("user", "x")], tokenizer_dir=tmp_path)


def _split_vs_full(counter, u1: str, reply: str, u2: str) -> tuple[list[int], list[int]]:
    """Tokens of the restored-dialog path vs tokens of the whole history rendered at once."""
    first = counter.encode(render_chat([Message("user", u1)]))
    followed = (
        first
        + counter.encode(reply)
        + [IM_END_ID]  # pushed by Genie before the restored query
        + counter.encode(render_followup(u2))
    )
    full = counter.encode(
        render_chat([Message("user", u1), Message("assistant", reply), Message("user", u2)])
    )
    return followed, full


@pytest.mark.parametrize(
    "reply",
    [
        "Four.",
        "2 + 2 = 4",
        " leading space",
        "  two spaces",
        "你好！我是通义千问。",
        "```python\nprint('hi')\n```\n",
        "Ends with newlines\n\n",
        "e\u0301",
        "😀",
    ],
)
def test_followup_reproduces_full_history_token_for_token(counter, reply):
    followed, full = _split_vs_full(counter, "What is 2+2?", reply, "And 3+3?\n")
    assert followed == full


def test_reply_starting_with_a_newline_does_not_line_up(counter):
    # Found while checking: in the full history "assistant\n" and the reply are one text
    # run, and Qwen2's `\s*[\r\n]+` pre-token swallows "\n" + the reply's leading newlines
    # into one token ("\n\n" is id 271), while the restored path has "\n" (198) then the
    # reply's own "\n" (198). Same text, different ids.
    followed, full = _split_vs_full(counter, "Hi", "\nHello", "Bye")
    assert counter.decode(followed) == counter.decode(full)
    assert followed != full
    assert len(followed) == len(full) + 1
    assert 271 in full and 271 not in followed


@settings(max_examples=150, deadline=None)
@given(
    u1=st.text(max_size=30),
    reply=st.text(max_size=40),
    u2=st.text(max_size=30),
)
def test_followup_lines_up_unless_reply_starts_with_newline(counter, u1, reply, u2):
    # The only mismatch: whitespace at the start of the reply that reaches a \r or \n.
    leading = reply[: len(reply) - len(reply.lstrip())]
    assume("\n" not in leading and "\r" not in leading)
    followed, full = _split_vs_full(counter, u1, reply, u2)
    assert followed == full


def _template_dir(folder, template: str):
    folder.mkdir(exist_ok=True)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|im_end|>", "chat_template": template})
    )
    return folder


def test_a_followup_needs_turns_that_end_with_the_models_end_of_turn(tmp_path):
    # Turns end with <|eot|>, not Qwen2's <|im_end|>: a restored dialog cannot be continued.
    folder = _template_dir(
        tmp_path, "{% for m in messages %}[{{ m['role'] }}|{{ m['content'] }}]<|eot|>{% endfor %}"
    )
    with pytest.raises(ConfigError, match=r"does not end turns with <\|im_end\|>"):
        render_followup("hi", tokenizer_dir=folder)


def test_a_followup_needs_a_history_that_renders_the_same_when_a_turn_is_added(tmp_path):
    # The turn count is written after a 12-character head: adding a turn changes the text
    # of the history already on the phone, so no follow-up can be cut from it.
    folder = _template_dir(
        tmp_path,
        "<|im_start|>{{ messages|length }} turns\n"
        "{% for m in messages %}[{{ m['role'] }}|{{ m['content'] }}]<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}",
    )
    with pytest.raises(ConfigError, match=r"does not end turns with <\|im_end\|>"):
        render_followup("hi", tokenizer_dir=folder)
    # The same template without the count is fine: the follow-up is exactly the new turn.
    plain = _template_dir(
        tmp_path / "plain",
        "<|im_start|>turns\n"
        "{% for m in messages %}[{{ m['role'] }}|{{ m['content'] }}]<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}",
    )
    assert render_followup("hi", tokenizer_dir=plain) == "[user|hi]<|im_end|>>"


def test_a_tokenizer_configs_special_tokens_fill_the_template_else_the_models(tmp_path):
    template = "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    own = tmp_path / "own"
    own.mkdir()
    (own / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|eot|>", "chat_template": template})
    )
    assert render_chat([Message("user", "x")], tokenizer_dir=own) == "x<|eot|>"
    # A config that names no special token: the model's own (Qwen2's eos) fill in.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    assert render_chat([Message("user", "x")], tokenizer_dir=bare) == "x<|im_end|>"


def test_an_unreadable_tokenizer_config_is_a_config_error(tmp_path):
    # /proc/self/mem is a regular file that cannot be read from its start (EIO): what a
    # config on a failing disk, or one this user may not read, gives.
    (tmp_path / "tokenizer_config.json").symlink_to("/proc/self/mem")
    with pytest.raises(ConfigError) as err:
        render_chat([Message("user", "x")], tokenizer_dir=tmp_path)
    path = tmp_path / "tokenizer_config.json"
    assert err.value.message == f"{path} cannot be read: Input/output error"
