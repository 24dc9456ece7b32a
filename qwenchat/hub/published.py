"""Which chips have published context binaries for a model, and who says so.

A context binary runs on the chip it was compiled for, so a phone whose chip has none fails
at load (Genie error 5005) however healthy it is otherwise. The answer comes from AI Hub
Models' release index when it can be read (a cached copy counts: a release never changes),
else from the spec's own table (``HubAsset.published_socs``), and always says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qwenchat.errors import HubError

if TYPE_CHECKING:
    from qwenchat.hub.transport import HttpFetcher
    from qwenchat.models.spec import ModelSpec

TABLE_SOURCE = "qwenchat's table"


@dataclass(frozen=True)
class PublishedChips:
    socs: tuple[str, ...]  # phone SoC ids (getprop ro.soc.model), e.g. ("SM8750",)
    chipsets: tuple[str, ...]  # AI Hub's names of the chipsets, when the index answered
    source: str  # "AI Hub Models index v0.65.0" or "qwenchat's table"
    note: str = ""  # why the index was not used, when it was not

    def covers(self, soc: str) -> bool:
        return soc.strip().upper() in self.socs


class _NoNetwork:
    """A fetcher for offline answers: the index's cached files are read, nothing is fetched."""

    def head(self, url: str, headers: dict[str, str] | None = None):  # noqa: ANN201
        raise ConnectionError("offline")

    def get(self, url: str, *, start: int = 0, headers: dict[str, str] | None = None):  # noqa: ANN201
        raise ConnectionError("offline")


def _socs_of(index, chipsets: list[str]) -> tuple[str, ...]:  # noqa: ANN001
    """The phone SoC ids qwenchat knows whose binaries are among ``chipsets``."""
    from qwenchat.soc import SUPPORTED_SOCS

    wanted = set(chipsets)
    return tuple(s for s in SUPPORTED_SOCS if wanted & set(index.candidate_chipsets(s)))


def published_socs(
    spec: ModelSpec,
    online: bool,
    *,
    cache_dir: Path | None = None,
    fetcher: HttpFetcher | None = None,
    timeout: float = 10.0,
) -> PublishedChips:
    """The chips with published binaries of ``spec``'s model, with the source of the answer.

    ``online``: may the index be fetched (doctor asks with a short ``timeout``)? Offline,
    an index fetched before is still used.
    """
    table = PublishedChips(tuple(spec.hub.published_socs), (), TABLE_SOURCE)
    if not spec.hub.downloadable:
        # Nothing is published to download, whatever chip: the table says so too.
        return PublishedChips((), (), TABLE_SOURCE, spec.hub.not_published)
    if spec.hub.source == "asset-store":
        # No release index lists it: the version that published it names the file and chip.
        return PublishedChips(
            table.socs, (),
            f"qai-hub-models v{spec.hub.published_in} asset store "
            f"(models/{spec.hub.model_id}/{spec.hub.asset_store_file})",
        )
    from qwenchat.hub.fetch import hub_cache_root
    from qwenchat.hub.index import ModelNotListed, ReleaseIndex, release_version

    try:
        if not online:
            fetcher = _NoNetwork()
        elif fetcher is None:
            from qwenchat.hub.transport import RequestsFetcher

            fetcher = RequestsFetcher(timeout=timeout)
        index = ReleaseIndex.load(
            fetcher, hub_cache_root(cache_dir), spec.hub.model_id, None, spec.display_name
        )
        chipsets = index.chipsets_with_asset(spec.hub.runtimes, spec.hub.precision)
    except ModelNotListed as e:  # the index answered: this release publishes none
        return PublishedChips((), (), f"AI Hub Models index v{release_version()}", e.message)
    except HubError as e:
        # No index (offline, libraries missing, not listed): the table answers, saying why.
        return PublishedChips(table.socs, (), table.source, e.message)
    return PublishedChips(
        _socs_of(index, chipsets),
        tuple(index.label(c) for c in chipsets),
        f"AI Hub Models index v{index.version}",
    )
