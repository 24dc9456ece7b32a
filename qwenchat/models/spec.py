"""What qwenchat must know about one model to fetch, push, chat with and benchmark it.

A model is one typed object (simonw/llm's seam): everything that differs between the Genie
LLMs of AI Hub lives in a ``ModelSpec``, and code asks the spec instead of naming a model.
Adding a model is one entry in ``registry.py``, one Genie config in ``genie_configs/``,
one entry in ``qwenchat/data/published_figures.json`` and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubAsset:
    """Where AI Hub publishes the model's context binaries, and whether it may be downloaded."""

    model_id: str  # qai-hub-models' id, e.g. "qwen2_7b_instruct"
    # Release-index runtimes to look under, most wanted first: a whole Genie bundle beats bare
    # context binaries (which qwenchat completes into a bundle itself).
    runtimes: tuple[str, ...] = ("genie", "qnn_context_binary")
    precision: str = "w4a16"
    # Chips (getprop ro.soc.model) with published binaries, from Qualcomm's perf data; the
    # release index is asked when online.
    published_socs: tuple[str, ...] = ("SM8750",)
    # False when Qualcomm does not publish the binaries (restrict_model_sharing): the model
    # must be exported with the user's own AI Hub job.
    downloadable: bool = True
    # Where the qai-hub-models version that published the binaries put them: "release-index"
    # (the release's release_assets, what `fetch` reads by default) or "asset-store" (a file
    # its model.py fetches with CachedWebModelAsset.from_asset_store: models/<id>/v<N>/<file>
    # under the store, named in ``asset_store_file``, for the chips in ``published_socs``).
    source: str = "release-index"
    asset_store_file: str | None = None  # e.g. "v2/snapdragon_8_elite/models.zip"
    published_in: str | None = None  # the qai-hub-models version whose model.py names it
    # Why there is nothing to download when ``downloadable`` is False (one line's reason).
    not_published: str = "AI Hub restricts sharing this model"


@dataclass(frozen=True)
class ChatFormat:
    """How a conversation becomes the text Genie tokenizes, and how a turn ends."""

    template: str  # a file in qwenchat/models/templates/ (the model's own Jinja template)
    # What transformers' apply_chat_template hands the template besides the messages.
    special_tokens: tuple[tuple[str, object], ...]
    end_of_turn: str  # the text that closes an assistant turn, e.g. "<|im_end|>"
    # Tokens Genie pushes itself before the text of a query on a restored dialog (it ends
    # the previous reply with its EOS token): Qwen2 1 (<|im_end|>).
    restore_prefix_tokens: int = 1
    # Whether a follow-up turn can be sent on its own after a restored dialog. When False,
    # every turn rebuilds the whole conversation.
    followup: bool = True
    # A regex matching every control marker of the model's tokenizer (its added tokens): such
    # text in a user's message is sent as plain text (models/user_text.py).
    control_text: str = ""


@dataclass(frozen=True)
class TokenizerSource:
    """Where the host gets the model's tokenizer when the phone's bundle cannot give it
    (building the emulated phone's bundle; counting before the first push)."""

    kind: str  # "qwen-tiktoken": built offline from dashscope's qwen.tiktoken
    vocab_size: int  # ids the tokenizer produces (genie_config n-vocab may be larger: padding)
    simulated: bool = False  # a stand-in with the right size and special tokens, not the real one


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what --model takes, e.g. "qwen2-7b-instruct"
    display_name: str  # "Qwen2-7B-Instruct"
    hub: HubAsset
    genie_config: str  # file in genie_configs/
    context_size: int
    chat: ChatFormat
    tokenizer: TokenizerSource
    published_key: str | None  # entry in qwenchat/data/published_figures.json
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return self.display_name
