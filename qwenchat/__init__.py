"""qwenchat: chat with and benchmark LLMs (Qwen2-7B-Instruct by default, and the other models
in ``qwenchat.models.registry``) on Snapdragon phones through Genie."""

import os as _os

__version__ = "0.1.0"

# qwenchat uses transformers only to render chat templates: its "PyTorch was not found"
# advice on import is noise to our users.
_os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
