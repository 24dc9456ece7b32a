"""Rebuild the recorded AI Hub store in this folder (run by hand; the files are committed).

    .venv/bin/python tests/data/hub/build_recorded.py

The files follow what qai-hub-models-cli 0.65 reads: ``releases/v<ver>/manifest.pb`` (a
ReleaseManifest), its ``platform_url`` (PlatformInfo), each model's ``release_assets.pb``
(ModelReleaseAssets) and asset zips at the URLs the library's ``_asset_url`` forms. S3
headers are those of a public-bucket object: an ETag (the MD5 for a single-part upload,
``md5-N`` for a multipart one) and, when asked with x-amz-checksum-mode, a base64 SHA-256.
The context binaries are a few KB of seeded bytes, not a model.

What the real index holds is only partly known (from qai-hub-models' published files): Qualcomm
exports Qwen2-7B-Instruct as ``qnn_context_binary`` and lists it for the chipsets
``qualcomm-snapdragon-8-elite-for-galaxy`` and ``qualcomm-qcs8750`` (0.65 perf.yaml), the
proto carries ``tool_versions`` with a ``qairt`` field, and other LLMs ship as ``genie``
bundles. So the recording holds every form the index can take, not the one we expect:

- Qwen2 ``qnn_context_binary`` w4a16 for the 8 Elite for Galaxy (single-part upload with a
  full-object SHA-256; QAIRT in tool_versions) and for the QCS8750 (multipart ETag, no
  hash, no tool_versions: an older upload);
- Qwen2 ``genie`` AND ``qnn_context_binary`` w4a16 for the 8 Gen 3 (the Genie bundle -- bins
  plus genie_config.json, htp_backend_ext_config.json and a stand-in tokenizer.json -- must
  be preferred; its zip layout is our assumption, no real one was observed);
- Qwen2 ``qnn_context_binary`` w8a16 only for the 8 Gen 2 (another precision: no w4a16 asset);
- a universal tflite model, and Llama-v2-7B-Chat listed with no assets (restricted sharing).

Chipset ids, soc_model and htp_version are 0.65's (devices_and_chipsets.yaml); the
``sm8750-ac`` alias is 0.65's, the other aliases are illustrative.
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
from qai_hub_models_cli.proto.platform_pb2 import (
    ChipsetInfo,
    DeviceInfo,
    PlatformInfo,
    RuntimeInfo,
)
from qai_hub_models_cli.proto.release_assets_pb2 import ModelReleaseAssets
from qai_hub_models_cli.proto.shared.precision_pb2 import Precision
from qai_hub_models_cli.proto.shared.runtime_pb2 import Runtime
from qai_hub_models_cli.proto.shared.tool_versions_pb2 import ToolVersions

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[2] / "qwenchat" / "data" / "genie_configs"
VERSION = "0.65.0"
REL = f"{STORE_URL}/qai-hub-models/releases/v{VERSION}"
MODELS = f"{STORE_URL}/qai-hub-models/models"
QAIRT_CTX = "2.37.1.250807093845_124904"
QAIRT_GENIE = "2.38.0.250901101412_127030"
PART_BYTES = 40 * 1024  # random, so the zip is as large: room for a drop mid-file


def bin_names(parts: int = 4) -> list[str]:
    return [f"weight_sharing_model_{n}_of_{parts}.serialized.bin" for n in range(1, parts + 1)]


def zip_bytes(top: str, seed: int, extra: dict[str, bytes] | None = None) -> bytes:
    rng = random.Random(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in bin_names():
            z.writestr(f"{top}/{name}", rng.randbytes(PART_BYTES))
        for name, data in (extra or {}).items():
            z.writestr(f"{top}/{name}", data)
    return buf.getvalue()


def genie_bundle_files() -> dict[str, bytes]:
    return {
        "genie_config.json": (CONFIGS / "reference" / "qwen2_7b_instruct.json").read_bytes(),
        "htp_backend_ext_config.json": (CONFIGS / "htp_backend_ext_config_v75.json").read_bytes(),
        "tokenizer.json": b'{"version": "1.0", "note": "recorded-fixture stand-in"}\n',
    }


def chipsets() -> list[ChipsetInfo]:
    return [
        ChipsetInfo(
            name="qualcomm-snapdragon-8-elite-for-galaxy",
            marketing_name="Snapdragon® 8 Elite for Galaxy Mobile",
            aliases=["sm8750-ac", "snapdragon 8 elite for galaxy"],
            htp_version=79,
            soc_model=69,
            reference_device="Samsung Galaxy S25",
            supports_weight_sharing=True,
        ),
        ChipsetInfo(
            name="qualcomm-qcs8750",
            marketing_name="Dragonwing™ Q-8750",
            aliases=["qcs8750"],
            htp_version=79,
            soc_model=69,
            reference_device="Dragonwing Q-8750",
            supports_weight_sharing=True,
        ),
        ChipsetInfo(
            name="qualcomm-snapdragon-8gen3",
            marketing_name="Snapdragon® 8 Gen 3 Mobile",
            aliases=["sm8650", "snapdragon 8 gen 3"],
            htp_version=75,
            soc_model=57,
            reference_device="Samsung Galaxy S24",
            supports_weight_sharing=True,
        ),
        ChipsetInfo(
            name="qualcomm-snapdragon-8gen2",
            marketing_name="Snapdragon® 8 Gen 2 Mobile",
            aliases=["sm8550", "snapdragon 8 gen 2"],
            htp_version=73,
            soc_model=43,
            reference_device="Samsung Galaxy S23",
            supports_weight_sharing=True,
        ),
        ChipsetInfo(
            name="qualcomm-snapdragon-x-elite",
            marketing_name="Snapdragon® X Elite",
            aliases=["sc8380xp"],
            htp_version=73,
            soc_model=60,
            reference_device="Snapdragon X Elite CRD",
            supports_weight_sharing=True,
        ),
    ]


def main() -> None:
    responses: dict[str, dict] = {}

    def add(url: str, name: str, data: bytes, headers: dict[str, str]) -> None:
        (HERE / name).write_bytes(data)
        responses[url] = {"file": name, "headers": {"content-length": str(len(data)), **headers}}

    for stale in HERE.glob("*.zip"):
        stale.unlink()

    qwen_assets_url = f"{MODELS}/qwen2_7b_instruct/releases/v{VERSION}/release_assets.pb"
    llama_assets_url = f"{MODELS}/llama_v2_7b_chat/releases/v{VERSION}/release_assets.pb"
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
            ManifestModelEntry(
                id="llama_v2_7b_chat",
                display_name="Llama-v2-7B-Chat",
                manifest_urls=ModelManifestUrls(release_assets=llama_assets_url),
            ),
        ],
    )
    platform = PlatformInfo(
        aihm_version=VERSION,
        chipsets=chipsets(),
        devices=[
            DeviceInfo(name="Samsung Galaxy S25", chipset="qualcomm-snapdragon-8-elite-for-galaxy"),
            DeviceInfo(name="Dragonwing Q-8750", chipset="qualcomm-qcs8750"),
            DeviceInfo(name="Samsung Galaxy S24", chipset="qualcomm-snapdragon-8gen3"),
            DeviceInfo(name="Samsung Galaxy S23", chipset="qualcomm-snapdragon-8gen2"),
        ],
        runtimes=[
            RuntimeInfo(runtime=Runtime.RUNTIME_GENIE, is_aot_compiled=True, display_name="Genie"),
            RuntimeInfo(
                runtime=Runtime.RUNTIME_QNN_CONTEXT_BINARY,
                is_aot_compiled=True,
                display_name="QNN Context Binary",
                website_runtime="qnn",
            ),
            RuntimeInfo(
                runtime=Runtime.RUNTIME_TFLITE, is_aot_compiled=False, display_name="TensorFlow Lite"
            ),
        ],
    )

    # (runtime, precision, chipset, tool_versions, upload kind, served, extra zip files)
    qwen = [
        ("qnn_context_binary", "w4a16", "qualcomm-snapdragon-8-elite-for-galaxy",
         {"qairt": QAIRT_CTX, "ai_hub_models": VERSION}, "single", True, None),
        ("qnn_context_binary", "w4a16", "qualcomm-qcs8750", None, "multipart", True, None),
        ("qnn_context_binary", "w4a16", "qualcomm-snapdragon-8gen3",
         {"qairt": QAIRT_CTX}, "single", False, None),
        ("genie", "w4a16", "qualcomm-snapdragon-8gen3",
         {"qairt": QAIRT_GENIE, "ai_hub_models": VERSION}, "single", True, genie_bundle_files()),
        ("qnn_context_binary", "w8a16", "qualcomm-snapdragon-8gen2",
         {"qairt": QAIRT_CTX}, "single", True, None),
    ]  # fmt: skip
    runtime_enum = {
        "genie": Runtime.RUNTIME_GENIE,
        "qnn_context_binary": Runtime.RUNTIME_QNN_CONTEXT_BINARY,
    }
    precision_enum = {"w4a16": Precision.PRECISION_W4A16, "w8a16": Precision.PRECISION_W8A16}
    assets = ModelReleaseAssets(aihm_version=VERSION, model_id="qwen2_7b_instruct")
    for seed, (runtime, precision, chip, tools, upload, served, extra) in enumerate(qwen, 1):
        url, filename = _asset_url("qwen2_7b_instruct", runtime, precision, Version(VERSION), chip)
        entry = assets.assets.add(
            precision=precision_enum[precision],
            runtime=runtime_enum[runtime],
            chipset=chip,
            download_url=url,
        )
        if tools:
            entry.tool_versions.CopyFrom(ToolVersions(**tools))
        if not served:  # listed, never downloaded by a correct fetch
            continue
        data = zip_bytes(filename.removesuffix(".zip"), seed, extra)
        md5 = hashlib.md5(data).hexdigest()
        if upload == "single":  # ETag = MD5, full-object SHA-256
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

    mobilenet = ModelReleaseAssets(aihm_version=VERSION, model_id="mobilenet_v2")
    mobilenet.assets.add(
        precision=Precision.PRECISION_FLOAT,
        runtime=Runtime.RUNTIME_TFLITE,
        download_url=f"{MODELS}/mobilenet_v2/releases/v{VERSION}/mobilenet_v2-tflite-float.zip",
    )
    octet = {"content-type": "binary/octet-stream"}
    add(f"{REL}/manifest.pb", "manifest.pb", manifest.SerializeToString(), octet)
    add(f"{REL}/platform.pb", "platform.pb", platform.SerializeToString(), octet)
    add(qwen_assets_url, "qwen2_7b_instruct.release_assets.pb", assets.SerializeToString(), octet)
    add(
        f"{MODELS}/mobilenet_v2/releases/v{VERSION}/release_assets.pb",
        "mobilenet_v2.release_assets.pb",
        mobilenet.SerializeToString(),
        octet,
    )
    add(
        llama_assets_url,
        "llama_v2_7b_chat.release_assets.pb",
        ModelReleaseAssets(aihm_version=VERSION, model_id="llama_v2_7b_chat").SerializeToString(),
        octet,
    )
    (HERE / "responses.json").write_text(json.dumps(responses, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
