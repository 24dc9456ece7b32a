"""Which published file holds a model's context binaries for a chip: AI Hub Models' index.

The release index is protobufs on AI Hub's public store (the layout ``qai_hub_models_cli``
reads): ``releases/v<ver>/manifest.pb`` names every model and the URL of its
``release_assets.pb`` (one entry per runtime x precision x chipset, with the download URL
and the tool versions it was built with), and ``platform.pb`` describes the chipsets (id,
marketing name, aliases, Hexagon ``htp_version`` and ``soc_model``). They are fetched
through our ``HttpFetcher`` and cached (a release never changes); parsing and asset
filtering are the library's own code.

A model's binaries may be listed under several runtimes: Qualcomm exports Qwen2-7B-Instruct
as ``qnn_context_binary`` (bare .bin parts) while other LLMs come as ``genie`` bundles. We
look under each of the spec's runtimes, most wanted first.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenchat.errors import HubError
from qwenchat.hub.errors import check_status
from qwenchat.hub.transport import HttpFetcher, _require


class ModelNotListed(HubError):
    """The release index was read and does not name the model."""


@dataclass(frozen=True)
class PublishedAsset:
    model_id: str
    version: str  # AI Hub Models release, e.g. "0.65.0"
    runtime: str  # "genie" or "qnn_context_binary"
    precision: str  # "w4a16"
    chipset: str  # AI Hub's canonical chipset id, e.g. qualcomm-snapdragon-8-elite-for-galaxy
    chipset_label: str  # its marketing name
    url: str
    # What the binaries were built with, as the index says ({"qairt": "2.37.1...", ...}).
    tool_versions: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def release_version() -> str:
    """The AI Hub Models release the installed qai-hub-models-cli reads (its own default)."""
    return str(_require("qai_hub_models_cli.versions").CURRENT_VERSION)


def store_url() -> str:
    return str(_require("qai_hub_models_cli.common").STORE_URL)


def manifest_url(version: str) -> str:
    return posixpath.join(store_url(), "qai-hub-models", "releases", f"v{version}", "manifest.pb")


def _cached_proto(fetcher: HttpFetcher, url: str, path: Path, proto_type, what: str):  # noqa: ANN001, ANN202
    if not path.is_file():
        try:
            response = fetcher.get(url)
            check_status(response, what)
            data = response.read()
        except (ConnectionError, TimeoutError, OSError) as e:
            raise HubError(
                f"cannot reach AI Hub's model store to read {what} ({type(e).__name__})",
                "Check the network connection (and any proxy), then try again.",
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    message = proto_type()
    try:
        message.ParseFromString(path.read_bytes())
    except Exception:  # protobuf's DecodeError: a damaged cache file, fetch it again next time
        path.unlink(missing_ok=True)
        raise HubError(f"AI Hub's {what} could not be parsed", "Run the command again.") from None
    return message


def _tool_versions(asset) -> dict[str, str]:  # noqa: ANN001
    if not asset.HasField("tool_versions"):
        return {}
    tv = asset.tool_versions
    return {f.name: getattr(tv, f.name) for f in tv.DESCRIPTOR.fields if getattr(tv, f.name)}


def _variant_of(alias: str, chip: str) -> bool:
    """``sm8750-ac`` and ``sc8380xp`` are variants of the phone's ``sm8750`` / ``sc8380``;
    ``sm87501`` would be another chip."""
    return alias == chip or (alias.startswith(chip) and not alias[len(chip)].isdigit())


@dataclass
class ReleaseIndex:
    version: str
    model_id: str
    display_name: str
    platform: Any  # qai_hub_models_cli PlatformInfo (a protobuf message: no types to hold)
    assets: object  # qai_hub_models_cli ModelReleaseAssets of model_id

    @classmethod
    def load(
        cls,
        fetcher: HttpFetcher,
        cache_root: Path,
        model_id: str,
        version: str | None = None,
        display_name: str | None = None,
    ) -> ReleaseIndex:
        manifest_pb2 = _require("qai_hub_models_cli.proto.manifest_pb2")
        platform_pb2 = _require("qai_hub_models_cli.proto.platform_pb2")
        assets_pb2 = _require("qai_hub_models_cli.proto.release_assets_pb2")
        enums = _require("qai_hub_models_cli.proto_helpers.platform_enums")
        version = version or release_version()
        name = display_name or model_id
        root = cache_root / "index" / f"v{version}"
        manifest = _cached_proto(
            fetcher,
            manifest_url(version),
            root / "manifest.pb",
            manifest_pb2.ReleaseManifest,
            f"release index v{version}",
        )
        wanted = enums.normalize_label(model_id)
        entry = next((m for m in manifest.models if enums.normalize_label(m.id) == wanted), None)
        if entry is None:
            raise ModelNotListed(
                f"AI Hub Models v{version} does not list {name}",
                "Export it with your own AI Hub account and pass --hub-job JOB_ID.",
            )
        platform = _cached_proto(
            fetcher,
            manifest.platform_url,
            root / "platform.pb",
            platform_pb2.PlatformInfo,
            f"chipset list v{version}",
        )
        if not entry.manifest_urls.release_assets:
            assets = assets_pb2.ModelReleaseAssets(model_id=entry.id)
        else:
            assets = _cached_proto(
                fetcher,
                entry.manifest_urls.release_assets,
                root / "models" / entry.id / "release_assets.pb",
                assets_pb2.ModelReleaseAssets,
                f"{name} asset list v{version}",
            )
        return cls(version, entry.id, entry.display_name or name, platform, assets)

    # -------------------------------------------------------------------- assets

    def _matching(self, runtime: str, precision: str, chipsets: list[str] | None = None) -> list:
        ra = _require("qai_hub_models_cli.proto_helpers.release_assets")
        try:
            found = ra.filter_release_assets(
                self.assets, self.platform, runtime=runtime, precision=precision, chipset=chipsets
            ).assets
        except KeyError as e:  # a runtime or precision this library does not know
            raise HubError(f"AI Hub Models v{self.version}: {str(e).strip(chr(34))}") from None
        return list(found)

    def label(self, chipset: str) -> str:
        for c in self.platform.chipsets:
            if c.name == chipset:
                return c.marketing_name or c.name
        return chipset

    def chipsets_with_asset(self, runtimes: tuple[str, ...], precision: str) -> list[str]:
        """Canonical ids of the chipsets with a published asset under any of ``runtimes``."""
        return sorted(
            {
                a.chipset
                for rt in runtimes
                for a in self._matching(rt, precision)
                if a.HasField("chipset")
            }
        )

    # -------------------------------------------------------------------- chips

    def candidate_chipsets(self, chip: str) -> list[str]:
        """The index's chipsets whose binaries run on ``chip``, closest first.

        ``chip`` is what a phone reports (``getprop ro.soc.model``: SM8750) or an AI Hub
        chipset id, name or alias. The platform data decides, not a table of ours: first the
        chipsets that name it (id, marketing name, alias, or an alias variant such as
        ``sm8750-ac``), then every chipset with the same Hexagon ``soc_model`` and
        ``htp_version`` -- a context binary is compiled for those two, so e.g. the index's
        ``qualcomm-qcs8750`` binaries load on an SM8750 phone. Only when the platform data
        knows nothing of a phone SoC id does qwenchat's own SoC table give its soc_model.
        """
        hw = _require("qai_hub_models_cli.proto_helpers.platform")
        key = hw.normalize_hw_name(chip)
        soc_id = re.fullmatch(r"[a-z]+\d{3,}[a-z]*", key) is not None  # sm8750, sc8380xp

        def names_it(c) -> bool:  # noqa: ANN001
            for n in (c.name, c.marketing_name, *c.aliases):
                nk = hw.normalize_hw_name(n)
                if nk == key or (soc_id and _variant_of(nk, key)):
                    return True
            return False

        chipsets = list(self.platform.chipsets)
        named = [c for c in chipsets if names_it(c)]
        targets = {(c.soc_model, c.htp_version) for c in named if c.soc_model}
        if not named:
            from qwenchat.soc import SUPPORTED_SOCS, soc_info

            if chip.strip().upper() in SUPPORTED_SOCS:
                info = soc_info(chip)
                targets = {(info.soc_model, int(info.dsp_arch.lstrip("v")))}
        named_ids = {c.name for c in named}
        same_hw = [
            c
            for c in chipsets
            if c.name not in named_ids and (c.soc_model, c.htp_version) in targets
        ]
        return [c.name for c in named + same_hw]

    def unknown_chip(self, chip: str, runtimes: tuple[str, ...], precision: str) -> HubError:
        hw = _require("qai_hub_models_cli.proto_helpers.platform")
        try:
            hw.resolve_chipset(self.platform.chipsets, self.platform.devices, chipset=chip)
            why = ""
        except KeyError as e:
            why = ": " + str(e).strip(chr(34)).split(" Run ")[0].strip()
        have = ", ".join(self.label(c) for c in self.chipsets_with_asset(runtimes, precision))
        return HubError(
            f"AI Hub knows no chipset {chip!r}{why}",
            "Pass a phone SoC id (SM8750) or an AI Hub chipset id; chips with an asset: "
            + (have or "none"),
        )

    def no_asset(self, chip: str, runtimes: tuple[str, ...], precision: str) -> HubError:
        have = [self.label(c) for c in self.chipsets_with_asset(runtimes, precision)]
        listing = ", ".join(have) if have else "none"
        return HubError(
            f"AI Hub Models v{self.version} has no {self.display_name} {precision} binaries "
            f"({' or '.join(runtimes)}) for {chip}; it has them for: {listing}",
            "Context binaries are built for one chip; use a phone with one of these, or "
            "compile your own on AI Hub and pass --hub-job JOB_ID.",
        )

    def asset_for(self, chip: str, runtimes: tuple[str, ...], precision: str) -> PublishedAsset:
        """The asset to download for ``chip``: the first of ``runtimes`` (a Genie bundle
        beats bare context binaries) on the closest chipset that has one."""
        candidates = self.candidate_chipsets(chip)
        if not candidates:
            raise self.unknown_chip(chip, runtimes, precision)
        for runtime in runtimes:
            found = self._matching(runtime, precision, candidates)
            # Chip-specific assets only: a universal one (no chipset) is not a context binary.
            by_chip = {a.chipset: a for a in reversed(found) if a.HasField("chipset")}
            for chipset in candidates:
                if chipset in by_chip:
                    # Several SDK builds of one asset may be listed: the index's first wins.
                    asset = by_chip[chipset]
                    return PublishedAsset(
                        model_id=self.model_id,
                        version=self.version,
                        runtime=runtime,
                        precision=precision,
                        chipset=chipset,
                        chipset_label=self.label(chipset),
                        url=asset.download_url,
                        tool_versions=_tool_versions(asset),
                    )
        named = self.label(candidates[0])
        shown = chip if named.lower() == chip.lower() else f"{chip} ({named})"
        raise self.no_asset(shown, runtimes, precision)
