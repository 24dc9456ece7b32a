"""Getting a model's context binaries from Qualcomm AI Hub.

Two sources: the published release asset (AI Hub Models' release index, read with
``qai-hub-models-cli``'s protobufs; downloaded here with resume and checks) and a user's own
compile/link job (``qai-hub`` with the token from ``~/.qai_hub/client.ini``). Both end in a
bundle folder that ``push-assets --bundle`` takes as it is, with a ``manifest.json`` record
of what it is and which QAIRT built it. What to fetch comes from the model's ``ModelSpec``
(``spec.hub``). The libraries are optional (``pip install 'qwenchat[hub]'``) and imported
lazily; importing this package imports neither them nor requests nor rich.

For other parts of qwenchat:

- ``bundle_qairt_version(bundle_dir)``: the QAIRT version a fetched bundle was compiled
  with (None when unknown);
- ``published_socs(spec, online)``: the chips with published binaries of a model, and
  whether the release index or qwenchat's table said so.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'qwenchat[hub]'  (qai-hub and qai-hub-models-cli)"

from qwenchat.hub.metadata import bundle_qairt_version  # noqa: E402
from qwenchat.hub.published import PublishedChips, published_socs  # noqa: E402

__all__ = ["INSTALL_HINT", "PublishedChips", "bundle_qairt_version", "published_socs"]
