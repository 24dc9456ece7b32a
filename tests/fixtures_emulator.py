"""The emulated phone for tests: started in-process on a free loopback port, own root each.

``emulator`` is the usual one (RSA auth on, the test's adb key authorized);
``emulator_factory`` makes others with any EmulatorConfig field overridden;
``phone_fault(emu, NAME, VALUE)`` switches a fault on in a running one, as
``qwenchat emulator fault`` does. Where the phone cannot start (no bwrap, user namespaces
refused) the test fails with one line naming the cause: never a silent skip; so does a test
asking for a small /data (``free_mb``) where its size cannot be enforced (no loop devices).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qwenchat.emulator.config import EmulatorConfig


@dataclass
class RunningEmulator:
    config: EmulatorConfig
    server: object  # qwenchat.emulator.server.EmulatorServer
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def serial(self) -> str:
        return self.server.serial

    @property
    def phone(self):
        return self.server.phone

    @property
    def root(self) -> Path:
        return self.config.root

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def emulator_factory(tmp_path_factory) -> Iterator[Callable[..., RunningEmulator]]:
    from qwenchat.emulator import PhoneStartError
    from qwenchat.emulator.adbd.auth import KeyStore, parse_public_key
    from qwenchat.emulator.server import EmulatorServer

    started: list[RunningEmulator] = []

    def make(*, authorized_keys: list[Path] | None = None, **overrides) -> RunningEmulator:
        root = overrides.pop("root", None) or tmp_path_factory.mktemp("emulator")
        config = EmulatorConfig(root=Path(root), **overrides)
        keys = KeyStore(config.state_dir)
        for pub in authorized_keys or []:
            pub = Path(pub)
            if pub.suffix != ".pub":
                pub = pub.with_name(pub.name + ".pub")
            keys.add_authorized(parse_public_key(pub.read_text()))
        server = EmulatorServer(config, port=0)
        try:
            server.start()
        except PhoneStartError as exc:
            pytest.fail(f"the emulated phone cannot start here: {exc}", pytrace=False)
        if "free_mb" in overrides and not server.phone.storage.enforced:
            server.stop()
            pytest.fail(
                f"this test needs /data limited to {config.free_mb} MiB, which cannot be "
                f"enforced here: {server.phone.storage.not_enforced}",
                pytrace=False,
            )
        running = RunningEmulator(config=config, server=server)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def adb_key() -> Path:
    """The private key at $HOME/.android/adbkey (HOME is the suite's temp dir), as Google's
    adb uses it; made with adb-shell's keygen unless adb already made one."""
    key = Path.home() / ".android" / "adbkey"
    if not (key.exists() and key.with_name("adbkey.pub").exists()):
        from adb_shell.auth.keygen import keygen

        key.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(key))
    return key


@pytest.fixture
def emulator(emulator_factory, adb_key) -> RunningEmulator:
    return emulator_factory(authorized_keys=[adb_key])


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory) -> Iterator[RunningEmulator]:
    """One phone (no auth) for a whole module, for tests that only look at it: starting a
    phone costs ~0.3 s, a module of read-only checks need not pay it per test."""
    from qwenchat.emulator import PhoneStartError
    from qwenchat.emulator.server import EmulatorServer

    config = EmulatorConfig(root=tmp_path_factory.mktemp("shared-emulator"), auth=False)
    server = EmulatorServer(config, port=0)
    try:
        server.start()
    except PhoneStartError as exc:
        pytest.fail(f"the emulated phone cannot start here: {exc}", pytrace=False)
    yield RunningEmulator(config=config, server=server)
    server.stop()


@pytest.fixture
def phone_fault() -> Callable[..., str]:
    """``phone_fault(emu, "fail-command", "mv")``: on at once in the running phone."""
    from qwenchat.emulator.faults import set_fault

    def switch(emu: RunningEmulator, name: str, value: object = None) -> str:
        return set_fault(emu.root, name, None if value is None else str(value))

    return switch
