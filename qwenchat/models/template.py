"""A model's chat template, rendered as transformers renders it.

Genie takes plain text and tokenizes it on the phone, so the prompt must be exactly the text
the model's own Hugging Face template gives. We render in the jinja2 environment of
transformers' ``render_jinja_template`` -- the function ``apply_chat_template`` calls --
rebuilt in ``jinja_render`` (importing transformers costs seconds), on the template
from a tokenizer folder's ``tokenizer_config.json`` (or the model's built-in verbatim copy in
``templates/``, named by its ``ModelSpec``), so we never re-implement a template and never
pay ~1 s to load a tokenizer just to render text (tests check the result equals
``apply_chat_template``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.errors import ConfigError, UsageError
from qwenchat.models.registry import get_model

if TYPE_CHECKING:
    from qwenchat.models.spec import ChatFormat, ModelSpec

ROLES = ("system", "user", "assistant")
TEMPLATES_DIR = Path(__file__).parent / "templates"


def _chat_format(model: ModelSpec | None) -> ChatFormat:
    if model is None:

        model = get_model()
    return model.chat


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise UsageError(
                f"Unknown chat role {self.role!r}.", f"Use one of: {', '.join(ROLES)}."
            )
        if not isinstance(self.content, str):
            raise UsageError(f"A {self.role} message must be text, not {type(self.content).__name__}.")


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template plus the special-token variables it is rendered with."""

    source: str
    special_tokens: tuple[tuple[str, object], ...]
    origin: str  # where the template came from, for error messages

    def render(
        self,
        messages: Sequence[Message],
        *,
        add_generation_prompt: bool,
        continue_final_message: bool = False,
    ) -> str:
        # jinja2 in transformers' environment, without importing transformers (seconds of a
        # one-shot question's start): see jinja_render.
        from qwenchat.models.jinja_render import render_template

        if not messages:
            raise UsageError("Cannot render an empty conversation.", "Give at least one message.")
        chat = [asdict(m) for m in messages]
        try:
            return render_template(
                self.source,
                chat,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
                variables=dict(self.special_tokens),
            )
        except Exception as exc:  # jinja syntax/undefined errors, or a final message not shown
            raise ConfigError(
                f"The chat template from {self.origin} failed to render: {exc}",
                "Fix or remove the chat_template in tokenizer_config.json.",
            ) from exc


def _special_tokens_from_config(config: dict) -> tuple[tuple[str, object], ...]:
    pairs: list[tuple[str, object]] = []
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        value = config.get(key)
        if isinstance(value, dict):  # serialised AddedToken
            value = value.get("content")
        if value is not None:
            pairs.append((key, value))
    extra = config.get("additional_special_tokens") or config.get("extra_special_tokens")
    if isinstance(extra, list):
        pairs.append(("additional_special_tokens", tuple(extra)))
    return tuple(pairs)


def _pick_named_template(value: object, origin: str) -> str:
    # tokenizer_config.json holds either one template or a list of {"name", "template"}.
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {item.get("name"): item.get("template") for item in value if isinstance(item, dict)}
        default = named.get("default")
        if isinstance(default, str):
            return default
    raise ConfigError(f"{origin} has a chat_template that is neither text nor a 'default' entry.")


@functools.lru_cache(maxsize=16)
def _load_template(fmt: ChatFormat, tokenizer_dir: str | None, stamp: tuple) -> ChatTemplate:
    builtin = ChatTemplate(
        (TEMPLATES_DIR / fmt.template).read_text(encoding="utf-8"),
        fmt.special_tokens,
        f"qwenchat's built-in copy ({fmt.template})",
    )
    if tokenizer_dir is None:
        return builtin
    folder = Path(tokenizer_dir)
    config_path = folder / "tokenizer_config.json"
    config: dict = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"{config_path} cannot be read: {exc.strerror or exc}",
                "Check the file's permissions and the disk, or rebuild it with "
                "`python -m qwenchat.models.tokenizer_build DIR`.",
            ) from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{config_path} is not valid JSON: {exc}",
                "Rebuild it with `python -m qwenchat.models.tokenizer_build DIR`.",
            ) from exc
        if not isinstance(config, dict):
            raise ConfigError(f"{config_path} is not a JSON object.")
    tokens = _special_tokens_from_config(config) or builtin.special_tokens
    if config.get("chat_template") is not None:
        source = _pick_named_template(config["chat_template"], str(config_path))
        return ChatTemplate(source, tokens, str(config_path))
    # transformers 5 saves the template beside the config instead of inside it.
    jinja_path = folder / "chat_template.jinja"
    if jinja_path.is_file():
        return ChatTemplate(jinja_path.read_text(encoding="utf-8"), tokens, str(jinja_path))
    return builtin


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_mtime_ns, st.st_size)


def chat_template(
    tokenizer_dir: Path | None = None, *, model: ModelSpec | None = None
) -> ChatTemplate:
    """The template for ``model`` (the default model when None), or the one in
    ``tokenizer_dir`` when that folder has one (cached; reloaded when its files change)."""
    fmt = _chat_format(model)
    if tokenizer_dir is None:
        return _load_template(fmt, None, ())
    folder = Path(tokenizer_dir).resolve()
    stamp = (_stamp(folder / "tokenizer_config.json"), _stamp(folder / "chat_template.jinja"))
    return _load_template(fmt, str(folder), stamp)


def _plain(messages: Sequence[Message], fmt: ChatFormat) -> list[Message]:
    """Every message's text with the model's control markers made plain text
    (models/user_text.py): user text never becomes a control token; the template adds its
    own markers after this."""
    from qwenchat.models.user_text import as_text

    return [Message(m.role, as_text(m.content, fmt)) for m in messages]


def render_chat(
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    tokenizer_dir: Path | None = None,
    model: ModelSpec | None = None,
) -> str:
    """The whole conversation as the model's template writes it."""
    template = chat_template(tokenizer_dir, model=model)
    return template.render(
        _plain(messages, _chat_format(model)), add_generation_prompt=add_generation_prompt
    )


def render_followup(
    user_text: str, *, tokenizer_dir: Path | None = None, model: ModelSpec | None = None
) -> str:
    """A follow-up turn for a restored Genie dialog.

    The restored state ends just after the assistant's reply; Genie pushes the end of turn
    (Qwen2: ``<|im_end|>``) itself before the new text. So the turn is whatever the
    full-history rendering has after that end of turn, for ChatML
    ``"\\n<|im_start|>user\\n{text}<|im_end|>\\n<|im_start|>assistant\\n"``. It is cut from
    a real rendering so it always agrees with the template in use.
    """
    fmt = _chat_format(model)
    end = fmt.end_of_turn
    template = chat_template(tokenizer_dir, model=model)
    if not fmt.followup:
        raise ConfigError(
            f"The chat template from {template.origin} cannot continue a restored dialog.",
            "Every turn of this model rebuilds the conversation.",
        )
    earlier = [Message("system", "S"), Message("user", "U"), Message("assistant", "A")]
    before = template.render(earlier, add_generation_prompt=False)
    full = template.render(
        [*earlier, *_plain([Message("user", user_text)], fmt)], add_generation_prompt=True
    )
    cut = before.rfind(end)
    if cut < 0 or not full.startswith(before[:cut + len(end)]):
        raise ConfigError(
            f"The chat template from {template.origin} does not end turns with {end}.",
            "Follow-up turns need the end-of-turn text the model's spec names.",
        )
    return full[cut + len(end):]


def render_continuation(
    messages: Sequence[Message],
    *,
    tokenizer_dir: Path | None = None,
    model: ModelSpec | None = None,
) -> str:
    """The history with the last (assistant) message left open, to continue a reply that
    stopped at the token limit: no ``<|im_end|>`` after it, no new generation prompt."""
    if not messages or messages[-1].role != "assistant":
        raise UsageError(
            "Only an assistant reply can be continued.",
            "The last message must be the assistant's (partial) reply.",
        )
    return chat_template(tokenizer_dir, model=model).render(
        _plain(messages, _chat_format(model)),
        add_generation_prompt=False,
        continue_final_message=True,
    )
