"""Suite-wide isolation: the tests never touch a developer's HOME, adb server, keys or
history. This runs before any test module imports qwenchat."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SESSION_HOME = Path(tempfile.mkdtemp(prefix="qwenchat-test-home-"))
os.environ["HOME"] = str(_SESSION_HOME)
os.environ["QWENCHAT_HOME"] = str(_SESSION_HOME / "qwenchat")
# The Qwen2 tokenizer takes seconds to build: share it between runs, inside the repo.
os.environ.setdefault("QWENCHAT_CACHE", str(REPO / ".cache"))
# Google's adb talks to its server on this port; give the suite one of its own.
os.environ["ANDROID_ADB_SERVER_PORT"] = os.environ.get("QWENCHAT_TEST_ADB_PORT") or str(
    _free_port()
)
os.environ.pop("ANDROID_SERIAL", None)
# Nothing in the suite may reach the internet: AI Hub's store is a closed loopback port unless
# a test serves a recorded one there.
os.environ.setdefault("QWENCHAT_HUB_STORE", "http://127.0.0.1:9")
os.environ.pop("QWENCHAT_DEBUG", None)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Each test gets its own data dir (store, endpoints), under the session HOME."""
    monkeypatch.setenv("QWENCHAT_HOME", str(tmp_path / "qwenchat-home"))
    yield


def pytest_sessionfinish(session, exitstatus):
    # Stop the adb server the suite may have started on its private port.
    try:
        subprocess.run(
            ["adb", "-P", os.environ["ANDROID_ADB_SERVER_PORT"], "kill-server"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        pass


# Fixture modules, each owned by the feature that provides it (loaded when present).
pytest_plugins = [
    name
    for name in ("fixtures_emulator", "fixtures_bundle", "fixtures_device")
    if (Path(__file__).parent / f"{name}.py").exists()
]
