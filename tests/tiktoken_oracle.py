"""The suite's independent token count: tiktoken running Qwen's own BPE ranks (qwen.tiktoken)
with the pre-tokenizer pattern and ChatML control ids, sharing no code with qwenchat's
tokenizer (only the ranks file and the pattern string). Built once per test process."""

from __future__ import annotations

import functools

CHATML = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}


@functools.cache
def qwen_tiktoken():  # noqa: ANN201 - tiktoken.Encoding
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from qwenchat.models.tokenizer_build import PRETOKENIZE_REGEX, qwen_tiktoken_path

    return tiktoken.Encoding("qwen", pat_str=PRETOKENIZE_REGEX,
                             mergeable_ranks=load_tiktoken_bpe(str(qwen_tiktoken_path())),
                             special_tokens=CHATML)  # fmt: skip


def qwen_tiktoken_count(text: str) -> int:
    """Tokens of ``text``, control tokens in it matched as single ids."""
    return len(qwen_tiktoken().encode(text, allowed_special="all"))
