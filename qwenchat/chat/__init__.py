"""Chat with Qwen2 on Genie: the real Qwen2 tokenizer, its ChatML template, token counts.

Kept import-light on purpose (the CLI imports this package): tokenizers and transformers
are only imported inside the functions that need them. Import from the submodules:
``qwenchat.models.template``, ``qwenchat.models.tokens``, ``qwenchat.models.tokenizer_build``.
"""
