"""The shell protocols' framing and the device interface's shared pieces, byte by byte
against hand-built frames (a frame split across packets, the v1 exit-code marker held back
while streaming, the exit code's low byte), plus the interface's small contracts."""

from __future__ import annotations

import os

import pytest

from qwenchat.device.base import (
    Device,
    ReadTimeouts,
    RemoteStat,
    ShellResult,
    partial_file,
    push_source,
)
from qwenchat.device.shellproto import (
    EventShellStream,
    v1_events,
    v1_service,
    v2_events,
    v2_service,
)
from qwenchat.errors import UsageError


def frame(channel: int, payload: bytes) -> bytes:
    return bytes([channel]) + len(payload).to_bytes(4, "little") + payload


def test_v2_frames_split_across_packets_are_reassembled():
    wire = frame(1, b"hello") + frame(2, b"err") + frame(3, b"\x07")
    packets = [wire[:3], wire[3:8], wire[8:9], wire[9:]]
    assert list(v2_events(packets)) == [(1, b"hello"), (2, b"err"), (3, b"\x07")]


def test_v2_an_empty_frame_is_an_event_and_a_cut_frame_is_not():
    assert list(v2_events([b"\x01\x00\x00\x00\x00"])) == [(1, b"")]
    assert list(v2_events([frame(1, b"ok") + frame(1, b"lost")[:-1]])) == [(1, b"ok")]


def test_v2_a_frame_longer_than_255_bytes_uses_all_four_length_bytes():
    payload = bytes(range(256)) * 3
    assert list(v2_events([frame(1, payload)])) == [(1, payload)]


def test_service_strings_are_exactly_what_adbd_expects():
    assert v2_service("ls /data") == b"shell,v2,raw:ls /data"
    assert v1_service("exit 3") == b"shell:( exit 3\n); printf '\\n__qwenchat_rc=%d\\n' \"$?\""


def test_v1_marker_gives_the_exit_code_and_is_stripped():
    assert list(v1_events([b"hello\n__qwenchat_rc=3\n"])) == [(1, b"hello"), (3, b"\x03")]


def test_v1_exit_codes_wrap_to_one_byte():
    assert list(v1_events([b"\n__qwenchat_rc=300\n"]))[-1] == (3, bytes([44]))
    assert list(v1_events([b"\n__qwenchat_rc=256\n"]))[-1] == (3, b"\x00")


def test_v1_streams_all_but_the_last_32_bytes_while_waiting_for_the_marker():
    marker = b"\n__qwenchat_rc=0\n"  # 17 bytes
    events = list(v1_events([b"a" * 40 + marker]))
    assert events == [(1, b"a" * 25), (1, b"a" * 15), (3, b"\x00")]
    # 70 bytes pending: 38 go out at once (70 has no 32-bit, unlike 57, where 57 - 32,
    # 57 ^ 32 and 57 % 32 all give 25).
    events = list(v1_events([b"b" * 53 + marker]))
    assert events == [(1, b"b" * 38), (1, b"b" * 15), (3, b"\x00")]
    # Exactly 32 bytes pending: nothing is streamed early.
    assert list(v1_events([b"x" * 15 + marker])) == [(1, b"x" * 15), (3, b"\x00")]


def test_v1_output_without_a_final_marker_is_all_stdout_and_has_no_exit_code():
    assert list(v1_events([b"part", b"ial"])) == [(1, b"partial")]
    tail = b"\n__qwenchat_rc=1\nmore"
    assert list(v1_events([tail])) == [(1, tail)]


def test_event_stream_yields_stdout_keeps_stderr_and_exit_code():
    closed = []
    events = iter([(1, b"a"), (1, b""), (2, b"e1"), (2, b"e2"), (1, b"b"), (3, b"\x05")])
    stream = EventShellStream(events, on_close=closed.append)
    assert list(stream) == [b"a", b"b"]
    assert (stream.stderr, stream.exit_code) == (b"e1e2", 5)
    stream.close()
    stream.close()
    assert closed == [True]  # once, and finished


def test_event_stream_with_an_empty_exit_frame_has_no_exit_code():
    stream = EventShellStream(iter([(3, b"")]))
    assert list(stream) == [] and stream.exit_code is None


def test_closing_a_stream_early_stops_its_source_and_says_unfinished():
    closed, stopped = [], []

    def source():
        try:
            yield (1, b"first")
            yield (1, b"second")
        finally:
            stopped.append(True)

    with EventShellStream(source(), on_close=closed.append) as stream:
        assert next(iter(stream)) == b"first"
    assert closed == [False] and stopped == [True]


def test_read_timeouts_default_to_none_and_the_reader_can_change_idle():
    stream = EventShellStream(iter([]))
    assert (stream.timeouts.first, stream.timeouts.idle) == (None, None)
    stream.set_read_timeout(2.5)
    assert stream.timeouts.idle == 2.5 and stream.timeouts.first is None
    own = ReadTimeouts(first=30.0, idle=5.0)
    assert EventShellStream(iter([]), timeouts=own).timeouts is own


def test_shell_result_decodes_bad_utf8_with_replacement_and_ok_means_zero():
    r = ShellResult(0, b"caf\xc3\xa9 \xff", b"warn \xfe")
    assert r.ok and r.text == "café \ufffd" and r.error_text == "warn \ufffd"
    assert not ShellResult(1, b"").ok
    assert not ShellResult(-1, b"").ok
    assert ShellResult(2, b"x").stderr == b""


def test_remote_stat_is_dir_only_for_directories():
    assert RemoteStat(0o040755, 0, 0).is_dir
    assert not RemoteStat(0o100644, 10, 0).is_dir
    assert not RemoteStat(0o120777, 10, 0).is_dir  # a symlink
    assert not RemoteStat(0o060660, 0, 0).is_dir  # a block device shares a bit with dirs


def test_push_source_refuses_a_folder_and_keeps_the_files_own_mtime(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        push_source(tmp_path, None)
    f = tmp_path / "w.bin"
    f.write_bytes(b"x")
    os.utime(f, (1_600_000_000.7, 1_600_000_000.7))
    assert push_source(f, None) == (f, 1_600_000_000)
    assert push_source(str(f), 42) == (f, 42)


def test_partial_file_is_renamed_into_place_only_when_the_pull_completes(tmp_path):
    local = tmp_path / "out.txt"
    with partial_file(local) as part:
        assert part == tmp_path / ".out.txt.part"
        part.write_text("whole")
    assert local.read_text() == "whole" and not part.exists()

    other = tmp_path / "cut.txt"
    with pytest.raises(ConnectionError), partial_file(other) as part:
        part.write_text("half")
        raise ConnectionError("link dropped")
    assert not other.exists() and not part.exists()


class _Recorder(Device):
    """The interface alone: what its shared methods send to shell()."""

    serial, transport_name = "rec", "direct"

    def __init__(self):
        self.commands, self.closed = [], 0

    def shell(self, command, *, timeout=60.0):
        self.commands.append(command)
        return ShellResult(0, b"  SM8650 \n")

    def close(self):
        self.closed += 1

    stream_shell = push = push_bytes = pull = pull_bytes = stat = None


def test_getprop_quotes_the_name_and_strips_the_value():
    dev = _Recorder()
    assert dev.getprop("ro.soc.model") == "SM8650"
    assert dev.getprop("x y") == "SM8650"
    assert dev.commands == ["getprop ro.soc.model", "getprop 'x y'"]


def test_device_context_closes_and_side_channel_is_itself():
    with _Recorder() as dev:
        with dev.side_channel() as side:
            assert side is dev
    assert dev.closed == 1
    assert Device.concurrent_streams is False


def test_a_shell_result_cannot_be_changed_after_the_fact():
    import dataclasses

    r = ShellResult(0, b"out")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.exit_code = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        RemoteStat(0o040755, 0, 0).mode = 0
