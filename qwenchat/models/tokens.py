"""Token ids and counts with the real Qwen2 tokenizer, as Genie sees the prompt.

Genie tokenizes the prompt file's text with tokenizer.json, recognising special tokens
written in the text (``<|im_start|>`` and friends are how ChatML reaches it), and adds a
BOS token only when the config's ``bos-token`` is not -1. ``TokenCounter`` does the same on
the host so prompt sizes are known before anything runs on the phone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from qwenchat.errors import ConfigError
from qwenchat.models.tokenizer_build import ensure_qwen2_tokenizer

NO_BOS = -1

_cache: dict[tuple[str, int, int], object] = {}
_cache_lock = threading.Lock()


def _load(path: Path):
    from tokenizers import Tokenizer

    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError as exc:
        raise ConfigError(
            f"Tokenizer file {path} cannot be read: {exc.strerror or exc}",
            "Build it with `python -m qwenchat.models.tokenizer_build DIR`.",
        ) from exc
    key = (str(resolved), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        tokenizer = _cache.get(key)
        if tokenizer is None:
            try:
                tokenizer = Tokenizer.from_file(str(resolved))
            except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
                raise ConfigError(
                    f"{path} is not a valid tokenizer.json: {exc}",
                    "Rebuild it with `python -m qwenchat.models.tokenizer_build DIR`.",
                ) from exc
            _cache[key] = tokenizer
    return tokenizer


class TokenCounter:
    """Encode, decode and count with one tokenizer.json (loaded once per file and version)."""

    def __init__(self, tokenizer_json: Path) -> None:
        self.path = Path(tokenizer_json)
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = _load(self.path)
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        # add_special_tokens=False: nothing is added around the text (Qwen2 adds nothing
        # anyway); special tokens *inside* the text are still matched as single ids.
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)


def default_counter() -> TokenCounter:
    """A counter on the cached Qwen2 tokenizer (built on first use)."""

    return TokenCounter(ensure_qwen2_tokenizer())


def count_prompt_tokens(
    text: str, config_bos_token: int, *, tokenizer_json: Path | None = None
) -> int:
    """Prompt tokens as Genie counts them for one query: the tokenizer's ids for the text,
    plus the BOS token Genie prepends when genie_config's ``bos-token`` is not -1.

    The Qwen2 tutorial config has ``"bos-token": -1`` (no extra token); qai-hub-models'
    generator writes 151643, which makes every prompt one token longer.
    """
    counter = TokenCounter(tokenizer_json) if tokenizer_json is not None else default_counter()
    return counter.count(text) + (0 if config_bos_token == NO_BOS else 1)
