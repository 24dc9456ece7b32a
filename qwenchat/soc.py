"""Facts about Snapdragon chips: the Hexagon arch context binaries are built for, the
``soc_model`` id htp_backend_ext_config.json wants, and the chip's name.

A neutral home: the Genie config (genie/), the phone's identity (device/) and AI Hub's
chipset names (hub/) all need these, and none of them owns the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenchat.errors import ConfigError


@dataclass(frozen=True)
class SocInfo:
    soc: str  # what `getprop ro.soc.model` says, e.g. "SM8750"
    name: str
    soc_model: int  # htp_backend_ext_config.json "soc_model"
    dsp_arch: str  # Hexagon arch the context binaries and the Skel are built for


_SOCS = (
    SocInfo("SM8550", "Snapdragon 8 Gen 2", 43, "v73"),
    SocInfo("SM8650", "Snapdragon 8 Gen 3", 57, "v75"),
    SocInfo("SM8750", "Snapdragon 8 Elite", 69, "v79"),
    SocInfo("SC8380", "Snapdragon X Elite / X Plus", 60, "v73"),
)
_SOC_BY_ID = {info.soc: info for info in _SOCS}
SUPPORTED_SOCS: tuple[str, ...] = tuple(_SOC_BY_ID)


def soc_info(soc: str) -> SocInfo:
    info = _SOC_BY_ID.get(soc.strip().upper())
    if info is None:
        supported = ", ".join(f"{i.soc} ({i.name})" for i in _SOCS)
        raise ConfigError(
            f"unsupported SoC {soc!r}: qwenchat knows {supported}",
            hint="Context binaries are built for one Hexagon arch; use a phone with one of these chips.",
        )
    return info


def soc_name(soc: str) -> str:
    """The chip's marketing name, or the id itself when qwenchat does not know it."""
    info = _SOC_BY_ID.get(soc.strip().upper())
    return info.name if info is not None else soc
