"""`qwenchat serve` on emulated phones, in this process, on a real loopback socket.

``served(phones=N, ...)`` starts N emulated phones with the synthetic bundle, opens a chat
session on each (the live genie-app engine, the store in the test's tmp dir) and serves
them; the handle has the URL, the pool, the phones and the store's path. Import the fixture
into a test module (``from serve_helpers import served_fixture  # noqa: F401``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL = "qwen2-7b-instruct"


@dataclass
class Served:
    url: str
    running: object  # qwenchat.serve.server.RunningServer
    pool: object  # qwenchat.serve.pool.Pool
    phones: list  # (RunningEmulator, DirectDevice)
    db: Path

    @property
    def base(self) -> str:
        return self.url + "/v1"

    def rows(self, sql: str, *args) -> list[tuple]:
        db = sqlite3.connect(self.db)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def stop(self) -> None:
        self.running.stop()


@pytest.fixture(name="served")
def served_fixture(bundled_phone, tmp_path):
    from qwenchat.chat.session import open_chat_session
    from qwenchat.device.direct import DirectDevice
    from qwenchat.serve.app import ServeConfig
    from qwenchat.serve.phones import PhoneSlot
    from qwenchat.serve.pool import Pool
    from qwenchat.serve.server import start_in_thread
    from qwenchat.store import open_store

    started: list[Served] = []
    stores = []

    def start(
        phones: int = 1,
        *,
        queue: int = 16,
        api_key: str | None = None,
        max_body: int | None = None,
        profile: dict | None = None,
        engine: str = "session",
        drain_s: float = 30.0,
        phone: dict | None = None,
        **session_kw,
    ) -> Served:
        slots, opened = [], []
        db = None
        for i in range(phones):
            overrides = {"serial": f"emulator-served-{i + 1:04d}", **(phone or {})}
            emu, dev = bundled_phone(profile=profile, **overrides)
            # The test's own default store (QWENCHAT_HOME): `qwenchat history` reads it too.
            store = open_store()
            db = store.path
            stores.append(store)
            session = open_chat_session(dev, engine=engine, store=store, **session_kw)

            def reopen(emu=emu):
                return DirectDevice.connect_tcp(emu.host, emu.port, auth_timeout=5)

            slots.append(PhoneSlot(session, reopen=reopen))
            opened.append((emu, dev))
        pool = Pool(slots, limit=queue)
        config = ServeConfig(api_key=api_key)
        if max_body is not None:
            config.max_body = max_body
        running = start_in_thread(pool, config, drain_s=drain_s)
        handle = Served(running.url, running, pool, opened, db)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
    for store in stores:
        store.close()
