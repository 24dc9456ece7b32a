"""Which published file is Qwen2-7B-Instruct w4a16 for a chip: qai-hub-models-cli's index.

The release index is three protobufs on AI Hub's public store (the layout of
``qai_hub_models_cli``): ``releases/v<ver>/manifest.pb`` names every model and the URL of
its ``release_assets.pb``, and ``platform.pb`` lists the chipsets (with their Hexagon
``soc_model``). They are fetched through our ``HttpFetcher`` and cached (a release never
changes); parsing, chipset resolution and asset filtering are the library's own code.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from qwenchat.errors import HubError
from qwenchat.hub import MODEL_ID, MODEL_NAME, PRECISION, RUNTIME
from qwenchat.hub.errors import check_status
from qwenchat.hub.transport import HttpFetcher, _require


@dataclass(frozen=True)
class PublishedAsset:
    model_id: str
    version: str
    chipset: str  # AI Hub's canonical chipset id, e.g. qualcomm-snapdragon-8-elite
    chipset_label: str  # its marketing name
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def release_version() -> str:
    """The AI Hub Models release the installed qai-hub-models-cli reads (its own default)."""
    return str(_require("qai_hub_models_cli.versions").CURRENT_VERSION)


def manifest_url(version: str) -> str:
    common = _require("qai_hub_models_cli.common")
    return posixpath.join(
        common.STORE_URL, "qai-hub-models", "releases", f"v{version}", "manifest.pb"
    )


def _cached_proto(fetcher: HttpFetcher, url: str, path: Path, proto_type, what: str):  # noqa: ANN001, ANN202
    if not path.is_file():
        try:
            response = fetcher.get(url)
        except (ConnectionError, TimeoutError, OSError) as e:
            raise HubError(
                f"cannot reach AI Hub's model store to read {what} ({type(e).__name__})",
                "Check the network connection (and any proxy), then try again.",
            ) from None
        check_status(response, what)
        data = response.read()
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


@dataclass
class ReleaseIndex:
    version: str
    platform: object  # qai_hub_models_cli PlatformInfo
    assets: object  # qai_hub_models_cli ModelReleaseAssets for MODEL_ID

    @classmethod
    def load(
        cls, fetcher: HttpFetcher, cache_root: Path, version: str | None = None
    ) -> ReleaseIndex:
        manifest_pb2 = _require("qai_hub_models_cli.proto.manifest_pb2")
        platform_pb2 = _require("qai_hub_models_cli.proto.platform_pb2")
        assets_pb2 = _require("qai_hub_models_cli.proto.release_assets_pb2")
        enums = _require("qai_hub_models_cli.proto_helpers.platform_enums")
        version = version or release_version()
        root = cache_root / "index" / f"v{version}"
        manifest = _cached_proto(
            fetcher,
            manifest_url(version),
            root / "manifest.pb",
            manifest_pb2.ReleaseManifest,
            f"release index v{version}",
        )
        entry = next(
            (
                m
                for m in manifest.models
                if enums.normalize_label(m.id) == enums.normalize_label(MODEL_ID)
            ),
            None,
        )
        if entry is None:
            raise HubError(
                f"AI Hub Models v{version} does not list {MODEL_NAME}",
                "Use --hub-job with a model you compiled yourself.",
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
                f"{MODEL_NAME} asset list v{version}",
            )
        return cls(version, platform, assets)

    def _matching(self, chipset: str | None):  # noqa: ANN202
        ra = _require("qai_hub_models_cli.proto_helpers.release_assets")
        return ra.filter_release_assets(
            self.assets, self.platform, runtime=RUNTIME, precision=PRECISION, chipset=chipset
        ).assets

    def _label(self, chipset: str) -> str:
        for c in self.platform.chipsets:
            if c.name == chipset:
                return c.marketing_name or c.name
        return chipset

    def chipsets_with_asset(self) -> list[str]:
        return sorted(
            {self._label(a.chipset) for a in self._matching(None) if a.HasField("chipset")}
        )

    def resolve_chipset(self, chip: str) -> str:
        """A phone SoC id (SM8750), an AI Hub chipset id, name or alias -> canonical id."""
        from qwenchat.soc import SUPPORTED_SOCS, soc_info

        if chip.strip().upper() in SUPPORTED_SOCS:
            # The phone says SM8750; AI Hub's chipset list carries the same Hexagon soc_model.
            soc_model = soc_info(chip).soc_model
            names = [c.name for c in self.platform.chipsets if c.soc_model == soc_model]
            with_asset = [n for n in names if any(a.chipset == n for a in self._matching(None))]
            if with_asset or names:
                return (with_asset or names)[0]
            raise self._no_asset(f"{chip} ({soc_info(chip).name})")
        platform_helpers = _require("qai_hub_models_cli.proto_helpers.platform")
        try:
            return platform_helpers.resolve_chipset(
                self.platform.chipsets, self.platform.devices, chipset=chip
            ).name
        except KeyError as e:
            raise HubError(
                f"AI Hub knows no chipset {chip!r}: {str(e).strip(chr(34)).split(' Run ')[0]}",
                "Pass a phone SoC id (SM8750) or an AI Hub chipset id; chips with an asset: "
                + ", ".join(self.chipsets_with_asset()),
            ) from None

    def _no_asset(self, chip: str) -> HubError:
        have = self.chipsets_with_asset()
        listing = ", ".join(have) if have else "none"
        return HubError(
            f"AI Hub Models v{self.version} has no {MODEL_NAME} {PRECISION} Genie asset for {chip}; "
            f"it has one for: {listing}",
            "Context binaries are built for one chip; use a phone with one of these, or "
            "compile your own on AI Hub and pass --hub-job JOB_ID.",
        )

    def asset_for(self, chip: str) -> PublishedAsset:
        chipset = self.resolve_chipset(chip)
        matches = [a for a in self._matching(chipset) if a.HasField("chipset")] or list(
            self._matching(chipset)
        )
        if not matches:
            raise self._no_asset(self._label(chipset))
        # Several SDK builds of one chip's asset may be published; the index lists newest first.
        asset = matches[0]
        return PublishedAsset(
            model_id=MODEL_ID,
            version=self.version,
            chipset=chipset,
            chipset_label=self._label(chipset),
            url=asset.download_url,
        )
