"""System properties (getprop) of the emulated phone. Every one that names the device says
it is SIMULATED; ``ro.kernel.qemu`` stays unset because this is not Google's emulator."""

from __future__ import annotations

from qwenchat.emulator import SIMULATED_MODEL
from qwenchat.emulator.config import EmulatorConfig

BOARD_PLATFORMS = {"SM8750": "sun", "SM8650": "pineapple", "SM8550": "kalama"}
SDK_BY_RELEASE = {"15": "35", "14": "34", "13": "33", "12": "31", "16": "36"}


def build_fingerprint(config: EmulatorConfig) -> str:
    """BRAND/PRODUCT/DEVICE:RELEASE/ID/INCREMENTAL:TYPE/TAGS, as Android's. Real phones of
    one model share a fingerprint; each emulated phone gets its own (its chip in the
    product, its serial's digits as the incremental) so that reports from several can be
    told apart by fingerprint too."""
    release = str(config.android_version)
    product = f"qwenchat_emu_{config.soc.lower()}"
    digits = "".join(c for c in config.serial if c.isdigit())
    incremental = (digits or "".join(c for c in config.serial if c.isalnum()))[-12:] or "1"
    return f"qwenchat/{product}/qwenchat_emu:{release}/SIMULATED/{incremental}:user/release-keys"


def build_props(config: EmulatorConfig) -> dict[str, str]:
    release = str(config.android_version)
    sdk = SDK_BY_RELEASE.get(release.split(".")[0], "35")
    platform = BOARD_PLATFORMS.get(config.soc, config.soc.lower())
    return {
        "ro.product.model": SIMULATED_MODEL,
        "ro.product.manufacturer": "qwenchat",
        "ro.product.brand": "qwenchat",
        "ro.product.name": "qwenchat_emu",
        "ro.product.device": "qwenchat_emu",
        "ro.product.cpu.abi": "arm64-v8a",
        "ro.product.cpu.abilist": "arm64-v8a",
        "ro.soc.model": config.soc,
        "ro.soc.manufacturer": "QTI",
        "ro.board.platform": platform,
        "ro.hardware": "qcom",
        "ro.build.version.release": release,
        "ro.build.version.sdk": sdk,
        "ro.build.type": "user",
        "ro.build.fingerprint": build_fingerprint(config),
        "ro.build.display.id": "qwenchat emulator SIMULATED build",
        "ro.serialno": config.serial,
        "ro.boot.serialno": config.serial,
        "ro.qwenchat.simulated": "1",
        "sys.boot_completed": "1",
        "persist.sys.timezone": "UTC",
    }


def build_prop(config: EmulatorConfig) -> str:
    """The properties as /system/build.prop, which the phone's getprop reads."""
    lines = ["# SIMULATED phone (qwenchat emulator): written at every start"]
    lines += [f"{name}={value}" for name, value in sorted(build_props(config).items())]
    return "\n".join(lines) + "\n"
