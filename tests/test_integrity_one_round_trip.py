"""The bundle's integrity judged from the manifest in ONE shell round trip (two with deep).

Failure modes, each tested on the emulated phone:
- a second round trip is spent on the sizes (the check runs before every question);
- a file of the manifest cut short, or missing, passes;
- saved dialogs and scratch files in the work dir (not in the manifest) are taken for the
  bundle's files or make the check fail;
- deep mode stops hashing the listed files.

Oracle: sizes and file names written here, the manifest as pushed.
"""

from __future__ import annotations

from qwenchat.assets.integrity import bundle_integrity
from qwenchat.layout import PhoneLayout


def _shell_calls(dev) -> list[str]:
    calls: list[str] = []
    real = dev.shell

    def counted(command, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(command)
        return real(command, *args, **kwargs)

    dev.shell = counted
    return calls


def test_one_round_trip_and_damage_still_caught(bundled_phone, synthetic_bundle):
    _, dev = bundled_phone()
    layout = PhoneLayout()
    # Scratch and saved-dialog files beside the bundle are not the bundle's business.
    dev.shell(
        f"mkdir -p {layout.states_dir}/d1 {layout.tmp_dir} && echo x > {layout.states_dir}/d1/s "
        f"&& echo y > {layout.tmp_dir}/prompt-1.txt"
    )
    calls = _shell_calls(dev)
    verdict = bundle_integrity(dev, layout)
    assert verdict.ok, verdict.message
    assert len(calls) == 1

    part = synthetic_bundle.ctx_bins[0].name
    remote = f"{layout.bundle_dir}/{part}"
    size = synthetic_bundle.ctx_bins[0].stat().st_size
    dev.shell(f"truncate -s {size - 1} {remote}")
    cut = bundle_integrity(dev, layout)
    assert (cut.ok, cut.state) == (False, "damaged")
    assert f"bundle/{part} is {size - 1:,} bytes, the manifest says {size:,}" in cut.message

    dev.shell(f"rm {remote}")
    gone = bundle_integrity(dev, layout)
    assert (gone.ok, gone.state) == (False, "damaged")
    assert f"bundle/{part} is missing" in gone.message


def test_deep_hashes_every_file(bundled_phone, synthetic_bundle):
    _, dev = bundled_phone()
    layout = PhoneLayout()
    part = synthetic_bundle.ctx_bins[1].name
    # Same size, other bytes: only a hash tells.
    dev.shell(f"printf 'Z' | dd of={layout.bundle_dir}/{part} bs=1 seek=7 conv=notrunc 2>/dev/null")
    calls = _shell_calls(dev)
    assert bundle_integrity(dev, layout).ok  # sizes match
    deep = bundle_integrity(dev, layout, deep=True)
    assert len(calls) == 3
    assert (deep.ok, deep.state) == (False, "damaged")
    assert f"bundle/{part} has another SHA-256 than the manifest's" in deep.message
