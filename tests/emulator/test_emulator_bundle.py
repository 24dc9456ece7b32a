"""The synthetic QAIRT SDK and Genie bundle (SIMULATED) have the real shapes."""

from __future__ import annotations

import hashlib
import stat
import zlib
from pathlib import Path

from qwenchat.emulator.bundle import (
    GENIE_VERSION,
    SIM_MARKER,
    ctx_bin_name,
    make_bundle,
    parse_ctx_bin_header,
)
from qwenchat.models.tokenizer_build import ensure_qwen2_tokenizer


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sdk_tree_has_the_runtime_files(synthetic_bundle):
    q = synthetic_bundle.qairt
    genie = q / "bin" / "aarch64-android" / "genie-t2t-run"
    lines = genie.read_text().splitlines()
    assert lines[0] == "#!/system/bin/sh" and lines[1] == SIM_MARKER
    assert "SIMULATED" in genie.read_text()
    assert stat.S_IMODE(genie.stat().st_mode) == 0o755
    libs = sorted(p.name for p in (q / "lib" / "aarch64-android").iterdir())
    assert libs == sorted(
        [
            "libGenie.so",
            "libQnnHtp.so",
            "libQnnSystem.so",
            "libQnnHtpNetRunExtensions.so",
            "libQnnHtpPrepare.so",
            "libQnnHtpV79Stub.so",
        ]
    )
    for lib in (q / "lib" / "aarch64-android").iterdir():
        assert lib.read_bytes().startswith(b"SIMULATED stub of " + lib.name.encode())
    assert (
        f"libGenie version {GENIE_VERSION}".encode()
        in (q / "lib" / "aarch64-android" / "libGenie.so").read_bytes()
    )
    assert (q / "lib" / "hexagon-v79" / "unsigned" / "libQnnHtpV79Skel.so").is_file()


def test_bundle_holds_only_the_export_files(synthetic_bundle):
    b = synthetic_bundle
    names = sorted(p.name for p in b.bundle.iterdir())
    bins = [ctx_bin_name(i, 4) for i in range(1, 5)]
    assert names == sorted([*bins, "tokenizer.json"])
    assert [p.name for p in b.ctx_bins] == bins
    assert b.tokenizer == b.bundle / "tokenizer.json"
    assert sha(b.tokenizer) == sha(ensure_qwen2_tokenizer())


def test_ctx_bins_are_tagged_sized_and_incompressible(synthetic_bundle):
    digests = set()
    for part, path in enumerate(synthetic_bundle.ctx_bins, start=1):
        data = path.read_bytes()
        assert len(data) == 1 << 20
        assert data.startswith(b"QWENCHAT-EMU-CTXBIN arch=v79 part=%d/4 SIMULATED\n" % part)
        assert parse_ctx_bin_header(data[:64]) == {"arch": "v79", "part": f"{part}/4"}
        # Push must really move these bytes: they must not compress.
        assert len(zlib.compress(data[64:], 6)) > 0.99 * len(data[64:])
        digests.add(hashlib.sha256(data[64:]).hexdigest())
    assert len(digests) == 4


def test_other_arch_sizes_and_reproducibility(tmp_path):
    tok = ensure_qwen2_tokenizer()
    a = make_bundle(tmp_path / "a", bin_size_mb=0.25, arch="v75", parts=2, tokenizer=tok)
    again = make_bundle(tmp_path / "b", bin_size_mb=0.25, arch="v75", parts=2, tokenizer=tok)
    assert [p.name for p in a.ctx_bins] == [ctx_bin_name(1, 2), ctx_bin_name(2, 2)]
    assert all(p.stat().st_size == 256 * 1024 for p in a.ctx_bins)
    assert parse_ctx_bin_header(a.ctx_bins[0].read_bytes()[:64])["arch"] == "v75"
    assert (a.qairt / "lib" / "aarch64-android" / "libQnnHtpV75Stub.so").is_file()
    assert (a.qairt / "lib" / "hexagon-v75" / "unsigned" / "libQnnHtpV75Skel.so").is_file()
    assert [sha(p) for p in a.ctx_bins] == [sha(p) for p in again.ctx_bins]
    # Remaking in place replaces the files (no leftovers from an interrupted write).
    make_bundle(tmp_path / "a", bin_size_mb=0.5, arch="v75", parts=2, tokenizer=tok)
    assert a.ctx_bins[0].stat().st_size == 512 * 1024
    assert not list(a.bundle.glob("*.part"))
