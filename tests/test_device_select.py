"""Choosing the phone: remembered endpoints, --connect, -s by address or serial, errors."""

from __future__ import annotations

import pytest

from qwenchat.device.endpoints import (
    Endpoint,
    forget,
    load_endpoints,
    parse_endpoint,
    remember,
)
from qwenchat.device.select import list_devices, open_device
from qwenchat.errors import (
    DeviceUnauthorizedError,
    NoDeviceError,
    SeveralDevicesError,
    UsageError,
)


def test_parse_endpoint():
    assert parse_endpoint("10.0.0.2:5556") == Endpoint("10.0.0.2", 5556)
    assert parse_endpoint("phone.lan") == Endpoint("phone.lan", 5555)
    assert parse_endpoint("[::1]:7000") == Endpoint("::1", 7000)
    for bad in ("", "host:notaport", "host:70000", ":5555"):
        with pytest.raises(UsageError):
            parse_endpoint(bad)


def test_endpoints_are_remembered_in_the_data_dir():
    assert load_endpoints() == []
    assert remember(Endpoint("127.0.0.1", 5000))
    assert not remember(Endpoint("127.0.0.1", 5000))
    remember(Endpoint("10.0.0.9", 5555))
    assert load_endpoints() == [Endpoint("10.0.0.9", 5555), Endpoint("127.0.0.1", 5000)]
    assert forget(Endpoint("127.0.0.1", 5000))
    assert not forget(Endpoint("127.0.0.1", 5000))
    assert load_endpoints() == [Endpoint("10.0.0.9", 5555)]


def test_no_phone_at_all():
    with pytest.raises(NoDeviceError, match="no phone"):
        open_device(transport="direct")


def test_remembered_but_stopped_phone_is_offline(emulator):
    remember(parse_endpoint(emulator.address))
    emulator.stop()
    [summary] = list_devices(transport="direct")
    assert summary.state == "offline"
    with pytest.raises(NoDeviceError, match="offline"):
        open_device(transport="direct")


def test_one_remembered_phone_is_picked(emulator):
    remember(parse_endpoint(emulator.address))
    with open_device(transport="auto") as dev:
        assert dev.serial == emulator.address
        assert dev.transport_name == "direct"
        assert dev.shell("echo hi").text == "hi\n"


def test_connect_option_reaches_an_unremembered_phone(emulator):
    with open_device(connect=emulator.address, transport="direct") as dev:
        assert dev.shell("true").ok
    assert load_endpoints() == []  # --connect alone does not remember


def test_several_phones_need_a_choice(emulator_factory, adb_key):
    one = emulator_factory(authorized_keys=[adb_key], serial="emu-one")
    two = emulator_factory(authorized_keys=[adb_key], serial="emu-two")
    remember(parse_endpoint(one.address))
    remember(parse_endpoint(two.address))
    with pytest.raises(SeveralDevicesError) as excinfo:
        open_device(transport="direct")
    assert one.address in excinfo.value.message and two.address in excinfo.value.message
    with open_device(serial=two.address, transport="direct") as dev:  # by HOST:PORT
        assert dev.serial == two.address
    with open_device(serial="emu-one", transport="direct") as dev:  # by ro.serialno
        assert dev.serial == one.address
    with pytest.raises(NoDeviceError, match="emu-three"):
        open_device(serial="emu-three", transport="direct")


def test_two_phones_with_one_serial_are_never_a_silent_guess(emulator_factory, adb_key):
    one = emulator_factory(authorized_keys=[adb_key], serial="emu-same")
    two = emulator_factory(authorized_keys=[adb_key], serial="emu-same")
    remember(parse_endpoint(one.address))
    remember(parse_endpoint(two.address))
    with pytest.raises(SeveralDevicesError) as excinfo:
        open_device(serial="emu-same", transport="direct")
    message = excinfo.value.message
    assert message.startswith("2 phones call themselves 'emu-same': ")
    assert one.address in message and two.address in message
    assert excinfo.value.hint.startswith("Choose one by its address: -s 127.0.0.1:")
    with open_device(serial=one.address, transport="direct") as dev:  # the address decides
        assert dev.serial == one.address


def test_android_serial_is_honoured(emulator_factory, adb_key, monkeypatch):
    one = emulator_factory(authorized_keys=[adb_key], serial="emu-a")
    two = emulator_factory(authorized_keys=[adb_key], serial="emu-b")
    remember(parse_endpoint(one.address))
    remember(parse_endpoint(two.address))
    monkeypatch.setenv("ANDROID_SERIAL", "emu-b")
    with open_device(transport="direct") as dev:
        assert dev.serial == two.address


def test_unauthorized_phone_through_selection(emulator_factory, adb_key):
    phone = emulator_factory()  # our key is not authorized
    remember(parse_endpoint(phone.address))
    with pytest.raises(DeviceUnauthorizedError):
        open_device(transport="direct", auth_timeout=0.5)


def test_bad_transport_name():
    with pytest.raises(UsageError, match="transport"):
        open_device(transport="bluetooth")


def test_server_transport_without_server_finds_nothing():
    with pytest.raises(NoDeviceError):
        open_device(transport="server")


def test_s_with_an_address_reaches_a_never_connected_phone(emulator):
    with open_device(serial=emulator.address, transport="direct") as dev:
        assert dev.serial == emulator.address


def test_usb_without_libusb_says_how_to_install_it():
    import importlib.util

    if importlib.util.find_spec("usb1") is not None:
        pytest.skip("libusb1 is installed here")
    from qwenchat.device.direct import DirectDevice
    from qwenchat.errors import DeviceError

    with pytest.raises(DeviceError) as excinfo:
        DirectDevice.connect_usb()
    assert "pip install 'qwenchat[usb]'" in excinfo.value.hint
    with pytest.raises(NoDeviceError) as excinfo:
        open_device(transport="direct")
    assert "qwenchat[usb]" in excinfo.value.hint
