"""The models qwenchat runs, one ``ModelSpec`` each. The first entry is the default."""

from __future__ import annotations

from qwenchat.errors import UsageError
from qwenchat.models.spec import ChatFormat, HubAsset, ModelSpec, TokenizerSource

_CHATML_TOKENS = (
    ("eos_token", "<|im_end|>"),
    ("pad_token", "<|endoftext|>"),
    ("additional_special_tokens", ("<|im_start|>", "<|im_end|>")),
)

QWEN2_7B_INSTRUCT = ModelSpec(
    name="qwen2-7b-instruct",
    display_name="Qwen2-7B-Instruct",
    hub=HubAsset(model_id="qwen2_7b_instruct"),
    genie_config="qwen2_7b_instruct.json",
    context_size=4096,
    chat=ChatFormat(
        template="qwen2.jinja",
        special_tokens=_CHATML_TOKENS,
        end_of_turn="<|im_end|>",
        restore_prefix_tokens=1,
    ),
    tokenizer=TokenizerSource(kind="qwen-tiktoken", vocab_size=151646),
    published_key="qwen2-7b-instruct",
    aliases=("qwen2",),
)

MODELS: tuple[ModelSpec, ...] = (QWEN2_7B_INSTRUCT,)
DEFAULT_MODEL = MODELS[0].name


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_model(name: str | None = None) -> ModelSpec:
    """The spec for ``--model NAME`` (the default model when None); case and _/- do not matter."""
    if name is None:
        return MODELS[0]
    wanted = _key(name)
    for spec in MODELS:
        if wanted == _key(spec.name) or wanted in (_key(a) for a in spec.aliases):
            return spec
    known = ", ".join(spec.name for spec in MODELS)
    raise UsageError(f"unknown model {name!r}", hint=f"Known models: {known} (qwenchat models).")
