"""ADB packets: a 24-byte header (six little-endian uint32) and an optional payload."""

from __future__ import annotations

import struct
from dataclasses import dataclass

CNXN = 0x4E584E43
AUTH = 0x48545541
OPEN = 0x4E45504F
OKAY = 0x59414B4F
CLSE = 0x45534C43
WRTE = 0x45545257
STLS = 0x534C5453  # never sent: the emulator does not speak TLS

NAMES = {CNXN: "CNXN", AUTH: "AUTH", OPEN: "OPEN", OKAY: "OKAY", CLSE: "CLSE", WRTE: "WRTE"}

VERSION_CHECKSUM = 0x01000000  # peers at this version verify the payload byte sum
VERSION_NO_CHECKSUM = 0x01000001
MAX_PAYLOAD = 1024 * 1024
MAX_BANNER = 4096

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
TOKEN_SIZE = 20

HEADER = struct.Struct("<6I")


class ProtocolError(Exception):
    pass


@dataclass(frozen=True)
class Packet:
    command: int
    arg0: int
    arg1: int
    data: bytes

    @property
    def name(self) -> str:
        return NAMES.get(self.command, hex(self.command))


def checksum(data: bytes) -> int:
    """The byte sum adb-shell verifies; numpy keeps it cheap for 1 MiB payloads."""
    if len(data) < 4096:
        return sum(data) & 0xFFFFFFFF
    import numpy as np

    return int(np.frombuffer(data, dtype=np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF


def encode(command: int, arg0: int, arg1: int, data: bytes = b"", *, with_checksum: bool) -> bytes:
    check = checksum(data) if with_checksum and data else 0
    header = HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF)
    return header + data if data else header


def decode_header(raw: bytes) -> tuple[int, int, int, int]:
    """(command, arg0, arg1, data_length); the checksum is not verified (as adbd >= 0x01000001)."""
    command, arg0, arg1, length, _check, magic = HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for command {command:#x}")
    if command not in NAMES and command != STLS:
        raise ProtocolError(f"unknown command {command:#x}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes is over {MAX_PAYLOAD}")
    return command, arg0, arg1, length


def device_banner(props: dict[str, str], features: tuple[str, ...]) -> bytes:
    keys = ("ro.product.name", "ro.product.model", "ro.product.device")
    body = ";".join(f"{k}={props.get(k, '')}" for k in keys)
    banner = f"device::{body};features={','.join(features)}".encode()
    return banner[:MAX_BANNER]
