"""Shell protocol v2 stdin frames as the host sends them, checked against bytes written out
by hand: <B id><I len little-endian> + payload, id 0 = stdin, 4 = close-stdin; each frame,
header included, fits the packet size the phone announced."""

from __future__ import annotations

import pytest

from qwenchat.device.shellproto import v2_close_stdin_frame, v2_stdin_frames


def test_data_is_cut_into_frames_that_fit_the_packet():
    # 8-byte packets: 5 bytes of header leave 3 of payload per frame.
    assert v2_stdin_frames(b"abcdefgh", 8) == [
        b"\x00\x03\x00\x00\x00abc",
        b"\x00\x03\x00\x00\x00def",
        b"\x00\x02\x00\x00\x00gh",
    ]
    assert v2_stdin_frames(b"xyz", 8) == [b"\x00\x03\x00\x00\x00xyz"]
    assert v2_stdin_frames(b"", 8) == []


def test_a_large_write_uses_whole_packets():
    data = bytes(range(256)) * 1000  # 256000 bytes
    frames = v2_stdin_frames(data, 4096)
    assert [len(f) for f in frames[:-1]] == [4096] * (len(frames) - 1)
    assert len(frames) == -(-256000 // 4091)  # ceil: 4091 payload bytes per frame
    assert frames[0][:5] == b"\x00\xfb\x0f\x00\x00"  # stdin, 4091 bytes
    assert b"".join(f[5:] for f in frames) == data
    # The smallest packet that can carry a byte: header + 1.
    assert v2_stdin_frames(b"ab", 6) == [b"\x00\x01\x00\x00\x00a", b"\x00\x01\x00\x00\x00b"]


@pytest.mark.parametrize("packet", [5, 4, 0])
def test_a_packet_too_small_for_a_frame_is_refused_by_name(packet):
    with pytest.raises(ValueError, match=f"a packet of {packet} bytes cannot carry a stdin frame"):
        v2_stdin_frames(b"a", packet)


def test_close_stdin_is_an_empty_frame_on_channel_four():
    assert v2_close_stdin_frame() == b"\x04\x00\x00\x00\x00"


def test_a_stream_reads_only_its_own_channels_and_ignores_others():
    """Frames of channels the host does not read (0 = stdin, 5 = window size, or anything
    newer) are dropped wherever they come, before or after the exit code."""
    from qwenchat.device.shellproto import EventShellStream

    events = iter([(0, b"echo?"), (1, b"out-1 "), (2, b"err-1 "), (5, b"\x00\x10"),
                   (1, b""), (1, b"out-2"), (2, b"err-2"), (3, b"\x07"), (0, b"late"),
                   (9, b"x")])
    stream = EventShellStream(events)
    assert list(stream) == [b"out-1 ", b"out-2"]
    assert stream.stderr == b"err-1 err-2"
    assert stream.exit_code == 7
