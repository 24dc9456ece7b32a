"""Chat with a Genie LLM on the phone (Qwen2-7B-Instruct by default; Qwen2.5-7B-Instruct,
Llama-v2-7B-Chat, Baichuan2-7B with --model): each model's own tokenizer, chat template
and token counts.

Kept import-light on purpose (the CLI imports this package): tokenizers and transformers
are only imported inside the functions that need them. Import from the submodules:
``qwenchat.models.template``, ``qwenchat.models.tokens``, ``qwenchat.models.tokenizer_build``.
"""
