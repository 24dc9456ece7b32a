"""Token ids and counts with a model's tokenizer.json, as Genie sees the prompt.

Genie tokenizes the prompt file's text with tokenizer.json, recognising special tokens
written in the text (``<|im_start|>``, ``<s>``, ``<reserved_106>``: how each chat format
reaches it), and adds a BOS token only when the config's ``bos-token`` is not -1.
``TokenCounter`` counts the text's ids the same way on the host, so prompt sizes are known
before anything runs on the phone; the BOS is added by the callers that read the config
(chat/session.py, bench/runner.py). A counter on qwenchat's Baichuan2 stand-in says so
(``simulated``): its counts are not Baichuan2's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from qwenchat.errors import ConfigError
from qwenchat.models.spec import ModelSpec
from qwenchat.models.tokenizers import ensure_tokenizer
from qwenchat.models.tokenizers.baichuan2_standin import SIMULATED_MARKER

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
            "Build it with `python -m qwenchat.models.tokenizer_build DIR [--model NAME]`.",
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
                    "Rebuild it with `python -m qwenchat.models.tokenizer_build DIR [--model NAME]`.",
                ) from exc
            _cache[key] = tokenizer
    return tokenizer


class TokenCounter:
    """Encode, decode and count with one tokenizer.json (loaded once per file and version)."""

    def __init__(self, tokenizer_json: Path) -> None:
        self.path = Path(tokenizer_json)
        self._tokenizer = None

    @classmethod
    def for_model(cls, model: ModelSpec | str | None = None) -> TokenCounter:
        """A counter on the model's host-built tokenizer (built on first use)."""
        return cls(ensure_tokenizer(model))

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = _load(self.path)
        return self._tokenizer

    @property
    def loaded(self) -> bool:
        """Whether the tokenizer is parsed already (counting is then cheap)."""
        return self._tokenizer is not None

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

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer knows, added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def simulated(self) -> bool:
        """True for qwenchat's stand-in tokenizer (counts with it are SIMULATED)."""
        return self.tokenizer.token_to_id(SIMULATED_MARKER) is not None


def default_counter(model: ModelSpec | str | None = None) -> TokenCounter:
    """A counter on the model's cached tokenizer (default model: Qwen2-7B-Instruct)."""
    return TokenCounter.for_model(model)
