"""A synthetic QAIRT SDK and Genie bundle for the emulated phone. SIMULATED.

Nothing here is Qualcomm's: the "libraries" are small text stubs and the context binaries are
keyed pseudo-random bytes with a header naming the Hexagon arch they were "built" for. The
shapes are real, so push-assets, doctor and chat meet exactly what a real SDK + AI Hub export
would give them::

    out_dir/qairt/bin/aarch64-android/genie-t2t-run     (a stub that execs the emulator's sim)
    out_dir/qairt/bin/aarch64-android/genie-app         (likewise: the simulated genie-app)
    out_dir/qairt/lib/aarch64-android/libGenie.so ...   (stubs; libGenie.so carries the version)
    out_dir/qairt/lib/hexagon-v79/unsigned/libQnnHtpV79Skel.so
    out_dir/bundle/weight_sharing_model_{i}_of_4.serialized.bin + tokenizer.json

The bundle folder holds only what an AI Hub export + tokenizer give: the configs are written
by push-assets, as on a real phone.

The binaries must cost real bytes on the wire (push is what is being measured), so they are
incompressible: an AES-CTR keystream (several GB/s here, far above the disk) keyed by arch and
part, so a bundle is reproducible byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

GENIE_VERSION = "1.14.0"  # what the simulated genie-t2t-run prints: read back from libGenie.so
SIM_MARKER = "# qwenchat-emulator: simulated genie-t2t-run"
CTXBIN_HEADER_BYTES = 64
CTXBIN_MAGIC = b"QWENCHAT-EMU-CTXBIN"
_BLOCK = 1 << 20

GENIE_LAUNCHER = "/system/bin/qwenchat-genie-sim"  # placed by the emulator (programs.py)
GENIE_STUB = f"""#!/system/bin/sh
{SIM_MARKER}
# SIMULATED: this is not Qualcomm's genie-t2t-run. On the qwenchat emulated phone it execs the
# emulator's simulation in this same process (the pid stays this script's); elsewhere it fails.
[ -x {GENIE_LAUNCHER} ] && exec {GENIE_LAUNCHER} "$0" "$@"
echo "genie-t2t-run: SIMULATED stub, only runs on the qwenchat emulated phone" >&2
exit 1
"""

GENIE_APP_MARKER = "# qwenchat-emulator: simulated genie-app"
GENIE_APP_LAUNCHER = "/system/bin/qwenchat-genie-app-sim"  # placed by the emulator (programs.py)
GENIE_APP_STUB = f"""#!/system/bin/sh
{GENIE_APP_MARKER}
# SIMULATED: this is not Qualcomm's genie-app. On the qwenchat emulated phone it execs the
# emulator's simulation in this same process (the pid stays this script's); elsewhere it fails.
[ -x {GENIE_APP_LAUNCHER} ] && exec {GENIE_APP_LAUNCHER} "$0" "$@"
echo "genie-app: SIMULATED stub, only runs on the qwenchat emulated phone" >&2
exit 1
"""


@dataclass(frozen=True)
class BundlePaths:
    qairt: Path  # the synthetic $QAIRT_HOME
    bundle: Path  # ctx-bins + tokenizer.json, like an AI Hub export
    tokenizer: Path
    ctx_bins: list[Path]


def ctx_bin_name(part: int, parts: int) -> str:
    """The real Qwen2-7B-Instruct AI Hub asset names."""
    return f"weight_sharing_model_{part}_of_{parts}.serialized.bin"


# How each model's real export names its context binaries, and how many there are (Qualcomm's
# llm_on_genie configs and ai-hub-models' export.py; see genie_configs/README.md). The emulated
# phone's bundles take the same shape so push-assets meets what a real export gives.
EXPORT_PARTS: dict[str, tuple[str, int]] = {
    "qwen2-7b-instruct": ("weight_sharing_model_{part}_of_{parts}.serialized.bin", 4),
    "qwen2.5-7b-instruct": ("qwen2_5_7b_instruct_part_{part}_of_{parts}.bin", 6),
    "llama-v2-7b-chat": ("Llama2_Part{part}_Quantized.bin", 4),
    "baichuan2-7b": ("weight_sharing_model_{part}_of_{parts}.serialized.bin", 5),
}


def runtime_lib_names(arch: str) -> list[str]:
    """Files of QAIRT's lib/aarch64-android/ that a Genie run needs (genie.md)."""
    n = arch.lstrip("v")
    return [
        "libGenie.so",
        "libQnnHtp.so",
        "libQnnSystem.so",
        "libQnnHtpNetRunExtensions.so",
        "libQnnHtpPrepare.so",
        f"libQnnHtpV{n}Stub.so",
    ]


def skel_name(arch: str) -> str:
    return f"libQnnHtpV{arch.lstrip('v')}Skel.so"


def ctx_bin_header(arch: str, part: int, parts: int) -> bytes:
    text = f"{CTXBIN_MAGIC.decode()} arch={arch} part={part}/{parts} SIMULATED\n".encode()
    if len(text) > CTXBIN_HEADER_BYTES:
        raise ValueError(f"arch name too long for the ctx-bin header: {arch!r}")
    return text.ljust(CTXBIN_HEADER_BYTES, b"\0")


def parse_ctx_bin_header(head: bytes) -> dict[str, str] | None:
    """{'arch': 'v79', 'part': '1/4'} from a ctx-bin's first bytes, or None if not ours."""
    if not head.startswith(CTXBIN_MAGIC):
        return None
    fields = head[:CTXBIN_HEADER_BYTES].split(b"\n", 1)[0].decode("ascii", "replace").split()
    return dict(f.split("=", 1) for f in fields if "=" in f)


def _stub_library(name: str, arch: str) -> bytes:
    lines = [
        f"SIMULATED stub of {name} for the qwenchat emulated phone (not Qualcomm code)",
        f"libGenie version {GENIE_VERSION}",
        f"hexagon arch {arch}",
    ]
    # A little padding so the files have a plausible non-trivial size to push and hash.
    body = ("\n".join(lines) + "\n").encode()
    return body + hashlib.sha256(name.encode()).digest() * 128


def _keystream(arch: str, part: int):
    """Encryptor whose update(zeros) yields incompressible, reproducible bytes."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(f"qwenchat-emu-ctxbin:{arch}:{part}".encode()).digest()[:16]
    return Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()


def _write_ctx_bin(path: Path, size: int, arch: str, part: int, parts: int) -> None:
    header = ctx_bin_header(arch, part, parts)
    size = max(size, len(header))
    stream = _keystream(arch, part)
    zeros = bytes(_BLOCK)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb", buffering=0) as f:
        f.write(header)
        left = size - len(header)
        while left > 0:
            n = min(_BLOCK, left)
            f.write(stream.update(zeros[:n]) if n < _BLOCK else stream.update(zeros))
            left -= n
    tmp.replace(path)


def _default_tokenizer(model: str) -> Path:
    from qwenchat.models.tokenizer_build import ensure_tokenizer

    return Path(ensure_tokenizer(model))


def make_qairt(qairt: Path, *, arch: str = "v79") -> Path:
    """The synthetic SDK tree (bin + lib stubs + Skel) under ``qairt``."""
    bin_dir = qairt / "bin" / "aarch64-android"
    lib_dir = qairt / "lib" / "aarch64-android"
    skel_dir = qairt / "lib" / f"hexagon-{arch}" / "unsigned"
    for d in (bin_dir, lib_dir, skel_dir):
        d.mkdir(parents=True, exist_ok=True)
    genie = bin_dir / "genie-t2t-run"
    genie.write_text(GENIE_STUB)
    genie.chmod(0o755)
    app = bin_dir / "genie-app"
    app.write_text(GENIE_APP_STUB)
    app.chmod(0o755)
    for name in runtime_lib_names(arch):
        (lib_dir / name).write_bytes(_stub_library(name, arch))
    (skel_dir / skel_name(arch)).write_bytes(_stub_library(skel_name(arch), arch))
    (qairt / "SIMULATED.txt").write_text(
        "Synthetic QAIRT SDK made by qwenchat.emulator.bundle for the emulated phone.\n"
        "None of these files is Qualcomm's; they only run on the qwenchat emulator.\n"
    )
    return qairt


def make_bundle(
    out_dir: Path,
    *,
    bin_size_mb: float = 8,
    arch: str = "v79",
    parts: int | None = None,
    tokenizer: Path | None = None,
    model: str = "qwen2-7b-instruct",
) -> BundlePaths:
    """Write ``out_dir/qairt`` (synthetic SDK) and ``out_dir/bundle`` (export-shaped bundle).

    ``bin_size_mb`` is the size of EACH context binary (MiB), so the bundle holds
    ``parts * bin_size_mb`` MiB of binaries. ``tokenizer`` defaults to the real Qwen2
    tokenizer.json built by ``qwenchat.models.tokenizer_build``. Existing files are replaced.
    """
    if model not in EXPORT_PARTS:
        raise ValueError(f"no export shape for model {model!r}; known: {', '.join(EXPORT_PARTS)}")
    pattern, default_parts = EXPORT_PARTS[model]
    parts = default_parts if parts is None else parts
    if parts < 1:
        raise ValueError("parts must be >= 1")
    out_dir = Path(out_dir)
    qairt = make_qairt(out_dir / "qairt", arch=arch)
    bundle = out_dir / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    size = int(bin_size_mb * _BLOCK)
    bins = []
    for part in range(1, parts + 1):
        path = bundle / pattern.format(part=part, parts=parts)
        _write_ctx_bin(path, size, arch, part, parts)
        bins.append(path)
    src = Path(tokenizer) if tokenizer is not None else _default_tokenizer(model)
    tok = bundle / "tokenizer.json"
    shutil.copyfile(src, tok)
    os.utime(tok)
    return BundlePaths(qairt=qairt, bundle=bundle, tokenizer=tok, ctx_bins=bins)
