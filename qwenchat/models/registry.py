"""The models qwenchat runs, one ``ModelSpec`` each. The first entry is the default."""

from __future__ import annotations

from qwenchat.errors import UsageError
from qwenchat.models.spec import ChatFormat, HubAsset, ModelSpec, TokenizerSource

_CHATML_TOKENS = (
    ("eos_token", "<|im_end|>"),
    ("pad_token", "<|endoftext|>"),
    ("additional_special_tokens", ("<|im_start|>", "<|im_end|>")),
)

# Every "<|name|>" (ChatML's markers and Qwen2.5's vision/fim/object markers).
_QWEN_CONTROL = r"<\|[A-Za-z0-9_]+\|>"

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
        control_text=_QWEN_CONTROL,
    ),
    tokenizer=TokenizerSource(kind="qwen-tiktoken", vocab_size=151646),
    published_key="qwen2-7b-instruct",
    aliases=("qwen2",),
)

QWEN2_5_7B_INSTRUCT = ModelSpec(
    name="qwen2.5-7b-instruct",
    display_name="Qwen2.5-7B-Instruct",
    # Qualcomm lists it for the 8 Elite and X Elite (perf.yaml) but links no download
    # ("View Readme"): qai-hub-models exports it from its source (export.py's compile and
    # link jobs), no release publishes its binaries: --hub-job with your own export.
    hub=HubAsset(
        model_id="qwen2_5_7b_instruct",
        published_socs=("SM8750", "SC8380"),
        downloadable=False,
        not_published="no qai-hub-models release publishes them: it exports this model "
        "from its source",
    ),
    genie_config="qwen2_5_7b_instruct.json",
    context_size=4096,
    chat=ChatFormat(
        template="qwen2_5.jinja",
        special_tokens=_CHATML_TOKENS,
        end_of_turn="<|im_end|>",
        restore_prefix_tokens=1,
        control_text=_QWEN_CONTROL + r"|</?tool_call>",
    ),
    tokenizer=TokenizerSource(kind="qwen2.5-tiktoken", vocab_size=151665),
    published_key="qwen2.5-7b-instruct",
    aliases=("qwen2.5", "qwen2_5_7b_instruct", "qwen25"),
)

LLAMA_V2_7B_CHAT = ModelSpec(
    name="llama-v2-7b-chat",
    display_name="Llama-v2-7B-Chat",
    # restrict_model_sharing: Qualcomm does not distribute the binaries; export them with
    # your own AI Hub job (qai-hub-models export llama_v2_7b_chat), then --hub-job.
    hub=HubAsset(
        model_id="llama_v2_7b_chat",
        runtimes=("genie", "qnn_context_binary"),
        precision="w8a16",
        published_socs=("SM8750", "SM8650", "SC8380"),
        downloadable=False,
    ),
    genie_config="llama_v2_7b_chat.json",
    context_size=1024,
    chat=ChatFormat(
        template="llama2.jinja",
        special_tokens=(("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>")),
        end_of_turn="</s>",
        restore_prefix_tokens=1,  # Genie pushes </s> (id 2) before a restored query
        control_text=r"</?s>|<unk>",  # [INST] and <<SYS>> are plain text in its vocabulary
    ),
    tokenizer=TokenizerSource(kind="llama2-sentencepiece", vocab_size=32000),
    published_key="llama-v2-7b-chat",
    aliases=("llama2", "llama-2-7b-chat"),
)

BAICHUAN2_7B = ModelSpec(
    name="baichuan2-7b",
    display_name="Baichuan2-7B",
    # Precompiled: qai-hub-models v0.47's model.py fetches one zip of the five parts from its
    # asset store (CachedWebModelAsset.from_asset_store(MODEL_ID, 2,
    # "snapdragon_8_elite/models.zip")); no release index lists it, and no job can make it.
    hub=HubAsset(
        model_id="baichuan2_7b",
        precision="w4a16",
        published_socs=("SM8750",),
        source="asset-store",
        asset_store_file="v2/snapdragon_8_elite/models.zip",
        published_in="0.47.0",
    ),
    genie_config="baichuan2_7b.json",
    context_size=4096,
    chat=ChatFormat(
        template="baichuan2.jinja",
        special_tokens=(("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>")),
        end_of_turn="</s>",
        restore_prefix_tokens=1,
        control_text=r"</?s>|<unk>|<reserved_\d+>",
    ),
    # Baichuan2's vocabulary is not reachable from the registries we have: a stand-in with
    # its size and special tokens, SIMULATED wherever it is used.
    tokenizer=TokenizerSource(kind="baichuan2-standin", vocab_size=125696, simulated=True),
    published_key="baichuan2-7b",
    aliases=("baichuan2",),
)

MODELS: tuple[ModelSpec, ...] = (
    QWEN2_7B_INSTRUCT,
    QWEN2_5_7B_INSTRUCT,
    LLAMA_V2_7B_CHAT,
    BAICHUAN2_7B,
)
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
