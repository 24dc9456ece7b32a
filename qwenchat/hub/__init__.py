"""Getting Qwen2-7B-Instruct context binaries from Qualcomm AI Hub.

Two sources: the published release asset (``qai-hub-models-cli``'s asset index, downloaded
here with resume and checks) and a user's own compile/link job (``qai-hub`` with the token
from ``~/.qai_hub/client.ini``). Both end in a bundle folder of ``.bin`` files that
``push-assets`` takes as it is. The libraries are optional (``pip install 'qwenchat[hub]'``)
and imported lazily.
"""

from __future__ import annotations

MODEL_ID = "qwen2_7b_instruct"
MODEL_NAME = "Qwen2-7B-Instruct"
RUNTIME = "genie"
PRECISION = "w4a16"
INSTALL_HINT = "pip install 'qwenchat[hub]'  (qai-hub and qai-hub-models-cli)"
