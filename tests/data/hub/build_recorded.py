"""Rebuild the recorded AI Hub responses in this folder (run by hand; the files are committed).

They follow what qai-hub-models-cli 0.65 reads: ``releases/v<ver>/manifest.pb`` (a
ReleaseManifest), its ``platform_url`` (PlatformInfo), the model's ``release_assets.pb``
(ModelReleaseAssets) and asset zips named by the library's ``_asset_url``. S3 headers are
those of a public-bucket object: Content-Length, an ETag (MD5 for a single-part upload,
``md5-N`` for a multipart one) and, when asked with x-amz-checksum-mode, a base64 SHA-256.
The context binaries are a few KB of seeded bytes, not a model.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import zipfile
from pathlib import Path

from packaging.version import Version
from qai_hub_models_cli.common import STORE_URL
from qai_hub_models_cli.fetch import _asset_url
from qai_hub_models_cli.proto.manifest_pb2 import (
    ManifestModelEntry,
    ModelManifestUrls,
    ReleaseManifest,
)
from qai_hub_models_cli.proto.platform_pb2 import ChipsetInfo, PlatformInfo, RuntimeInfo
from qai_hub_models_cli.proto.release_assets_pb2 import ModelReleaseAssets
from qai_hub_models_cli.proto.shared.precision_pb2 import Precision
from qai_hub_models_cli.proto.shared.runtime_pb2 import Runtime

HERE = Path(__file__).resolve().parent
VERSION = "0.65.0"
REL = f"{STORE_URL}/qai-hub-models/releases/v{VERSION}"
MODELS = f"{STORE_URL}/qai-hub-models/models"


def zip_bytes(top: str) -> bytes:
    rng = random.Random(7)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n in range(1, 5):
            z.writestr(f"{top}/weight_sharing_model_{n}_of_4.serialized.bin", rng.randbytes(2048))
    return buf.getvalue()


def main() -> None:
    responses: dict[str, dict] = {}

    def add(url: str, name: str, data: bytes, headers: dict[str, str]) -> None:
        (HERE / name).write_bytes(data)
        responses[url] = {"file": name, "headers": {"content-length": str(len(data)), **headers}}

    qwen_assets_url = f"{MODELS}/qwen2_7b_instruct/releases/v{VERSION}/release_assets.pb"
    manifest = ReleaseManifest(
        version=VERSION,
        platform_url=f"{REL}/platform.pb",
        models=[
            ManifestModelEntry(
                id="mobilenet_v2",
                display_name="MobileNet-v2",
                manifest_urls=ModelManifestUrls(
                    release_assets=f"{MODELS}/mobilenet_v2/releases/v{VERSION}/release_assets.pb"
                ),
            ),
            ManifestModelEntry(
                id="qwen2_7b_instruct",
                display_name="Qwen2-7B-Instruct",
                manifest_urls=ModelManifestUrls(release_assets=qwen_assets_url),
            ),
        ],
    )
    platform = PlatformInfo(
        chipsets=[
            ChipsetInfo(
                name="qualcomm-snapdragon-8-elite",
                marketing_name="Snapdragon® 8 Elite Mobile",
                aliases=["snapdragon 8 elite", "sm8750"],
                htp_version=79,
                soc_model=69,
                supports_weight_sharing=True,
            ),
            ChipsetInfo(
                name="qualcomm-snapdragon-8-gen-3",
                marketing_name="Snapdragon® 8 Gen 3 Mobile",
                aliases=["snapdragon 8 gen 3", "sm8650"],
                htp_version=75,
                soc_model=57,
                supports_weight_sharing=True,
            ),
            ChipsetInfo(
                name="qualcomm-snapdragon-8-gen-2",
                marketing_name="Snapdragon® 8 Gen 2 Mobile",
                aliases=["snapdragon 8 gen 2", "sm8550"],
                htp_version=73,
                soc_model=43,
                supports_weight_sharing=True,
            ),
        ],
        runtimes=[
            RuntimeInfo(runtime=Runtime.RUNTIME_GENIE, is_aot_compiled=True, display_name="Genie"),
            RuntimeInfo(
                runtime=Runtime.RUNTIME_TFLITE,
                is_aot_compiled=False,
                display_name="TensorFlow Lite",
            ),
        ],
    )
    assets = ModelReleaseAssets(aihm_version=VERSION, model_id="qwen2_7b_instruct")
    for chip in ("qualcomm-snapdragon-8-elite", "qualcomm-snapdragon-8-gen-3"):
        url, filename = _asset_url("qwen2_7b_instruct", "genie", "w4a16", Version(VERSION), chip)
        assets.assets.add(
            precision=Precision.PRECISION_W4A16,
            runtime=Runtime.RUNTIME_GENIE,
            chipset=chip,
            download_url=url,
        )
        data = zip_bytes(filename.removesuffix(".zip"))
        md5 = hashlib.md5(data).hexdigest()
        if chip.endswith("8-elite"):  # single-part upload: ETag = MD5, full-object SHA-256
            headers = {
                "etag": f'"{md5}"',
                "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
                "x-amz-checksum-type": "FULL_OBJECT",
            }
        else:  # multipart upload: composite ETag, no whole-file hash published
            headers = {"etag": f'"{md5}-2"'}
        add(
            url,
            filename,
            data,
            {"content-type": "application/zip", "accept-ranges": "bytes", **headers},
        )

    add(
        f"{REL}/manifest.pb",
        "manifest.pb",
        manifest.SerializeToString(),
        {"content-type": "binary/octet-stream"},
    )
    add(
        f"{REL}/platform.pb",
        "platform.pb",
        platform.SerializeToString(),
        {"content-type": "binary/octet-stream"},
    )
    add(
        qwen_assets_url,
        "qwen2_7b_instruct.release_assets.pb",
        assets.SerializeToString(),
        {"content-type": "binary/octet-stream"},
    )
    (HERE / "responses.json").write_text(json.dumps(responses, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
