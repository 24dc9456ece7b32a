"""Issue 31, item 4: over Google's adb server, a phone that vanishes mid-reply is a lost phone
(stop reason "device lost", exit 75), as on the direct transport, not a Genie crash.

Failure mode: the adb server ends a shell stream whose transport dropped by closing it, with
no exit status; qwenchat took that for genie-t2t-run/genie-app ending without one ("stopped
unexpectedly", stop reason error, exit 1). The phone vanishes for real (the emulated phone is
stopped: its sockets closed, its processes killed) while Google's adb server holds it; the
oracle is the record's outcome and the words, hand-written.
"""

from __future__ import annotations

import threading

import pytest
from fixtures_device import google_adb
from test_faults_round2_push import _wait_listed

from qwenchat.runner import open_engine
from qwenchat.runner.record import Outcome
from qwenchat.runner.request import QueryRequest, SamplerSettings

pytestmark = pytest.mark.google_adb
CHATML = "<|im_start|>user\nWrite a long story about phones<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("engine", ["process", "session"])
def test_a_phone_lost_mid_reply_over_the_server_is_device_lost(bundled_phone, engine):
    from qwenchat.device.server import ServerDevice

    emu, direct = bundled_phone(time_scale=0.2)
    direct.close()
    google_adb("start-server")
    assert "connected" in google_adb("connect", emu.address).stdout
    try:
        _wait_listed(google_adb, emu.address)
        dev = ServerDevice(emu.address)
        runner = open_engine(dev, kind=engine)
        chunks: list[str] = []

        def on_text(text: str) -> None:
            chunks.append(text)
            if len(chunks) == 3:
                threading.Thread(target=emu.stop, daemon=True).start()

        record = runner.query(QueryRequest(CHATML, SamplerSettings(max_tokens=400)), on_text)
        assert record.outcome is Outcome.DEVICE_LOST, (record.outcome, record.message)
        assert record.text.startswith("".join(chunks[:3]))
        assert "lost the connection" in record.error
    finally:
        google_adb("disconnect", emu.address)
