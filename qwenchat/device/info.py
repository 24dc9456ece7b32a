"""What a phone is: model, SoC and Hexagon arch, Android version, memory, free space.

Read in one shell round trip (``getprop`` listing every property, ``/proc/meminfo`` and
``df -k`` of the work dir, separated by markers), so ``qwenchat devices`` stays quick even
over a slow link; the properties and memory are listed only when the host does not
remember them for this phone as it is now (same serial, boot id and build: ``facts_cache``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass

from qwenchat.device.base import Device
from qwenchat.errors import ConfigError
from qwenchat.shellwords import quote
from qwenchat.soc import soc_info

_PROP_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
_SPLIT = "__qwenchat_section__"
SIMULATED_PROP = "ro.qwenchat.simulated"


@dataclass(frozen=True)
class DeviceInfo:
    serial: str  # ro.serialno (what the phone calls itself)
    address: str  # what `-s` takes to reach it: HOST:PORT, USB serial, adb-server serial, or
    # SERIAL@HOST:PORT for a phone of another computer's adb server
    model: str
    manufacturer: str
    soc: str  # ro.soc.model, e.g. SM8750
    soc_name: str | None  # "Snapdragon 8 Elite" when qwenchat knows the chip
    hexagon_arch: str | None  # "v79"; None when the SoC is unknown to qwenchat
    android_version: str
    sdk: str
    ram_mb: int | None
    free_mb: int | None  # free space where the work dir lives
    work_dir: str
    transport: str  # "direct" or "server"
    simulated: bool
    fingerprint: str

    def to_dict(self) -> dict:
        return asdict(self)


def parse_getprop(text: str) -> dict[str, str]:
    """``[key]: [value]`` lines of a bare ``getprop`` into a dict (multi-line values skipped)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        match = _PROP_LINE.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


def parse_meminfo_mb(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) // 1024
    return None


def parse_df_free_mb(text: str) -> int | None:
    """Available KiB of the last filesystem in ``df -k`` output, in MiB."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    # Rows can wrap after a long device name: the numbers are the last five fields.
    fields = " ".join(lines[1:]).split()
    numeric = [f for f in fields if f.isdigit()]
    if len(numeric) < 3:
        return None
    return int(numeric[2]) // 1024  # 1K-blocks, Used, Available


def is_simulated(props: dict[str, str]) -> bool:
    return props.get(SIMULATED_PROP) == "1" or "SIMULATED" in props.get("ro.product.model", "")


def read_device_info(device: Device, work_dir: str) -> DeviceInfo:
    """One shell round trip: the phone's identity and free space always; its properties and
    memory only when the host remembers nothing for this phone as it is now (see
    ``facts_cache``)."""
    from qwenchat.device import facts_cache

    parent = posixpath.dirname(work_dir.rstrip("/")) or "/"
    address = device.name
    cached = facts_cache.load(address)
    # df of the work dir, or of its parent before the first push created it.
    command = (
        f"{facts_cache.identity_command()}; echo \"$qc_id\"; echo {_SPLIT}; "
        f"if {facts_cache.unchanged_test(cached)}; then echo same; else "
        f"getprop; echo {_SPLIT}; cat /proc/meminfo; fi; echo {_SPLIT}; "
        f"df -k {quote(work_dir)} 2>/dev/null || df -k {quote(parent)}"
    )
    result = device.shell(command, timeout=30.0)
    sections = result.text.split(_SPLIT)
    identity = facts_cache.parse_identity(sections[0]) if sections else None
    free_mb = parse_df_free_mb(sections[-1]) if len(sections) > 2 else None
    if cached is not None and len(sections) == 3 and sections[1].strip() == "same":
        props, ram_mb = cached.props, cached.ram_mb
    else:
        props = parse_getprop(sections[1]) if len(sections) > 1 else {}
        ram_mb = parse_meminfo_mb(sections[2]) if len(sections) > 3 else None
        if identity is not None and identity.boot_id and props:
            facts_cache.store(address, facts_cache.CachedFacts(identity, props, ram_mb))
    return info_from_props(props, device, work_dir, ram_mb=ram_mb, free_mb=free_mb)


def info_from_props(
    props: dict[str, str],
    device: Device,
    work_dir: str,
    *,
    ram_mb: int | None = None,
    free_mb: int | None = None,
) -> DeviceInfo:
    soc = props.get("ro.soc.model", "") or props.get("ro.board.platform", "")
    soc_name = arch = None
    if soc:

        try:
            known = soc_info(soc)
            soc_name, arch = known.name, known.dsp_arch
        except ConfigError:
            pass
    return DeviceInfo(
        serial=props.get("ro.serialno") or props.get("ro.boot.serialno") or device.serial,
        address=device.name,
        model=props.get("ro.product.model", ""),
        manufacturer=props.get("ro.product.manufacturer", ""),
        soc=soc,
        soc_name=soc_name,
        hexagon_arch=arch,
        android_version=props.get("ro.build.version.release", ""),
        sdk=props.get("ro.build.version.sdk", ""),
        ram_mb=ram_mb,
        free_mb=free_mb,
        work_dir=work_dir,
        transport=device.transport_name,
        simulated=is_simulated(props),
        fingerprint=props.get("ro.build.fingerprint", ""),
    )
