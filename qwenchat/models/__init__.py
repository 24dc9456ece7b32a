"""The model seam: one typed spec per model (``spec.py``), the registry (``registry.py``),
and what is model-specific on the host: chat templates, tokenizers, token counting."""

from qwenchat.models.registry import DEFAULT_MODEL, MODELS, get_model
from qwenchat.models.spec import ChatFormat, HubAsset, ModelSpec, TokenizerSource

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ChatFormat",
    "HubAsset",
    "ModelSpec",
    "TokenizerSource",
    "get_model",
]
