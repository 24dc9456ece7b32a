"""A command fed through its stdin on an open stream (Device.open_stdin), over both transports
and the emulated phone's real adbd shell service: what the command reads is exactly what was
written, write after write, and a command that has ended refuses further input loudly."""

from __future__ import annotations

import time

import pytest

from qwenchat.emulator.commandlog import read_records
from qwenchat.errors import DeviceError

DATA = [b"first line\n", bytes(range(256)) * 3, b"", b"x" * 70000, b"\x00tail without newline"]


def _wait_for(dev, path: str, size: int) -> bytes:
    # `cat` writes what it read as it reads it; the file has every byte once cat saw EOF.
    deadline = time.monotonic() + 10
    while True:
        got = dev.pull_bytes(path) if dev.stat(path) is not None else b""
        if len(got) >= size or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.parametrize("which", ["device", "server_device"])
def test_every_byte_written_reaches_the_command_in_order(request, which):
    dev = request.getfixturevalue(which)
    path = f"/data/local/tmp/stdin-{which}.bin"
    with dev.open_stdin(f"cat > {path}") as fed:
        for piece in DATA:
            fed.write(piece)
    expected = b"".join(DATA)
    assert _wait_for(dev, path, len(expected)) == expected


@pytest.mark.parametrize("which", ["device", "server_device"])
def test_a_write_lands_before_the_next_command_without_closing(request, which):
    # The session engine's use: the command stays open while other commands run.
    dev = request.getfixturevalue(which)
    path = f"/data/local/tmp/stdin-open-{which}.txt"
    with dev.open_stdin(f"cat > {path}") as fed:
        fed.write(b"one\n")
        assert _wait_for(dev, path, 4) == b"one\n"
        fed.write(b"two\n")
        assert _wait_for(dev, path, 8) == b"one\ntwo\n"


def test_writing_to_a_command_that_ended_is_an_error(device):
    with device.open_stdin("exit 0") as fed:
        deadline = time.monotonic() + 10
        with pytest.raises(DeviceError, match="ended"):
            while time.monotonic() < deadline:  # the phone closes the stream once it ends
                fed.write(b"anyone there?\n")
                time.sleep(0.05)


@pytest.mark.parametrize("which", ["device", "server_device"])
def test_files_sent_on_one_kept_sync_stream_arrive_whole(request, which, emulator):
    dev = request.getfixturevalue(which)
    files = {f"/data/local/tmp/kept-{which}-{i}.txt": f"prompt {i}\n".encode() * (i * 900 + 1)
             for i in range(4)}  # fmt: skip
    with dev.file_sender() as sender:
        for path, data in files.items():
            sender.send(data, path)
            assert dev.pull_bytes(path) == data  # there once send returns
        sends = [r for r in read_records(emulator.root)
                 if r.get("request") == "SEND" and f"kept-{which}-" in r["what"]]  # fmt: skip
        assert len(sends) == 4 and len({r["stream"] for r in sends}) == 1  # one stream
        # A refused file is one error; the stream is replaced and the next file arrives.
        with pytest.raises(DeviceError):
            sender.send(b"x", "/proc/no-such-dir/file")
        sender.send(b"after\n", f"/data/local/tmp/kept-{which}-after.txt")
    assert dev.pull_bytes(f"/data/local/tmp/kept-{which}-after.txt") == b"after\n"
    assert oct(dev.stat(next(iter(files))).mode & 0o777) == "0o644"
