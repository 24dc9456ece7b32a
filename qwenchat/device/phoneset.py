"""Several phones at once: which ones a command means, across adb servers, named by both.

Where phones are: this computer's adb server (ANDROID_ADB_SERVER_HOST/PORT), the adb
servers of other computers (``--adb-server HOST:PORT``, and those remembered by
``qwenchat connect --adb-server``), the TCP phones remembered by ``qwenchat connect``, and
USB phones. A phone is named by where it is reached and its serial (``PhoneRef.name``):
``SERIAL@HOST:PORT`` for another server's phone (two hosts may both hold an
``emulator-5554``), the bare serial or address for this computer's own.

``resolve_phone_set`` is the one resolution every front door calls (the CLI's ``-s``
repeated / ``--all`` / ``--adb-server``, and a server's): plain values in, a list of
``PhoneRef`` out, no Typer. An adb server that does not answer is a ``ServerProblem``
handed to ``on_problem`` (one line for the user), never the failure of the whole set.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from qwenchat.device.base import Device
from qwenchat.device.endpoints import Endpoint, looks_like_endpoint, parse_endpoint
from qwenchat.device.select import DEFAULT_AUTH_TIMEOUT, DeviceSummary, list_devices, open_summary
from qwenchat.device.server import ServerDevice, query_server, server_address
from qwenchat.device.servers import load_servers, parse_server
from qwenchat.errors import DeviceError, NoDeviceError, SeveralDevicesError, UsageError

SERVER_TIMEOUT_S = 3.0  # an adb server answers host:devices in milliseconds


@dataclass(frozen=True)
class PhoneRef:
    """One phone, not yet opened: how to reach it and what to call it."""

    serial: str  # what its reacher calls it: an adb server's serial, HOST:PORT, a USB serial
    server: str | None  # "HOST:PORT" of another computer's adb server holding it, else None
    transport: str  # "server" (an adb server, this computer's or another's) or "direct"
    kind: str  # "server", "tcp" or "usb"
    state: str  # adb's words: "device", "unauthorized", "offline", ...

    @property
    def name(self) -> str:
        """What every table, report and ``-s`` use: unique across servers."""
        return f"{self.serial}@{self.server}" if self.server else self.serial

    @property
    def via(self) -> str:
        """Where it is reached, for a table: direct, usb, server (this computer's), or the
        other server's address."""
        if self.server:
            return f"adb server {self.server}"
        return "usb" if self.kind == "usb" else self.transport

    @property
    def usable(self) -> bool:
        return self.state in ("device", "unauthorized")


@dataclass(frozen=True)
class ServerProblem:
    server: str  # HOST:PORT
    message: str  # one line: why it did not answer


@dataclass(frozen=True)
class PhoneListing:
    phones: list[PhoneRef]
    problems: list[ServerProblem]


def _other_servers(adb_servers: list[str] | None) -> list[Endpoint]:
    """The named and the remembered servers, without this computer's own, each once."""
    local = Endpoint(*server_address())
    seen: list[Endpoint] = []
    for server in [*(parse_server(s) for s in adb_servers or []), *load_servers()]:
        if server != local and server not in seen:
            seen.append(server)
    return seen


def list_phones(
    adb_servers: list[str] | None = None,
    *,
    connect: str | None = None,
    transport: str = "auto",
) -> PhoneListing:
    """Every phone qwenchat can reach, without opening any; the servers asked at once."""
    local = [
        PhoneRef(s.serial, None, s.transport, s.kind, s.state)
        for s in list_devices(connect=connect, transport=transport)
    ]
    servers = _other_servers(adb_servers) if transport != "direct" else []
    phones, problems = list(local), []

    def ask(server: Endpoint) -> list[tuple[str, str]] | DeviceError:
        try:
            return query_server((server.host, server.port), SERVER_TIMEOUT_S)
        except DeviceError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(servers)))) as pool:
        for server, answer in zip(servers, pool.map(ask, servers), strict=True):
            if isinstance(answer, DeviceError):
                problems.append(ServerProblem(server.address, answer.message))
                continue
            phones += [PhoneRef(serial, server.address, "server", "server", state)
                       for serial, state in answer]  # fmt: skip
    return PhoneListing(phones, problems)


def _matches(ref: PhoneRef, wanted: str) -> bool:
    return wanted in (ref.name, ref.serial)


def resolve_phone_set(
    serials: list[str] | None = None,
    all_phones: bool = False,
    adb_servers: list[str] | None = None,
    *,
    connect: str | None = None,
    transport: str = "auto",
    on_problem: Callable[[ServerProblem], None] | None = None,
) -> list[PhoneRef]:
    """The phones a command means: each ``serials`` entry (a name, a serial, or a TCP
    phone's HOST:PORT never connected), or with ``all_phones`` every usable phone reached.

    Neither given: the one usable phone there is (as a single-phone command picks it).
    Raises UsageError (both given), NoDeviceError (a serial nobody holds, or no phone at
    all) and SeveralDevicesError (a bare serial two servers hold: name it
    SERIAL@HOST:PORT; or several phones and neither given). Servers that did not answer
    go to ``on_problem``.
    """
    wanted = [s.strip() for s in serials or [] if s.strip()]
    if all_phones and wanted:
        raise UsageError("give -s SERIAL or --all, not both")
    # A name SERIAL@HOST:PORT brings its server along, remembered or not.
    named = [v.rpartition("@")[2] for v in wanted if "@" in v]
    listing = list_phones([*(adb_servers or []), *named], connect=connect, transport=transport)
    for problem in listing.problems:
        if on_problem is not None:
            on_problem(problem)
    if all_phones or not wanted:
        phones = [p for p in listing.phones if p.usable]
        if not phones:
            raise NoDeviceError(
                "no phone found" + (" (some adb servers did not answer)" if listing.problems else ""),
                "`qwenchat devices` lists the phones qwenchat can reach.",
            )
        if not all_phones and len(phones) > 1:
            raise SeveralDevicesError(
                f"{len(phones)} phones found: " + ", ".join(p.name for p in phones),
                hint="Choose with -s NAME (repeatable), or take them all with --all.",
            )
        return phones
    chosen: list[PhoneRef] = []
    for value in wanted:
        matching = [p for p in listing.phones if _matches(p, value)]
        if not matching and looks_like_endpoint(value) and "@" not in value:
            endpoint = parse_endpoint(value)  # a TCP phone never `connect`ed: reach it anyway
            matching = [PhoneRef(endpoint.address, None, "direct", "tcp", "device")]
        if not matching:
            raise NoDeviceError(
                f"no phone {value!r} found",
                "`qwenchat devices` lists the phones qwenchat can reach, by name.",
            )
        if len(matching) > 1:
            raise SeveralDevicesError(
                f"{len(matching)} phones answer to {value!r}: "
                + ", ".join(p.name for p in matching),
                hint=f"Name one: -s {matching[0].name}",
            )
        if matching[0] not in chosen:
            chosen.append(matching[0])
    return chosen


def open_phone(
    ref: PhoneRef,
    *,
    on_wait: Callable[[str], None] | None = None,
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
) -> Device:
    """``ref`` opened (raises DeviceError and its kinds when it cannot be)."""
    if ref.server is None:
        summary = DeviceSummary(ref.serial, ref.transport, ref.kind, ref.state)
        return open_summary(summary, on_wait=on_wait, auth_timeout=auth_timeout)
    if ref.state != "device":
        raise DeviceError(f"the adb server {ref.server} reports {ref.serial} as {ref.state}")
    endpoint = parse_server(ref.server)
    return ServerDevice(ref.serial, server=(endpoint.host, endpoint.port))


@dataclass(frozen=True)
class PhoneOutcome:
    """What one phone's worker ended with: its result, or the error that stopped it."""

    phone: PhoneRef
    result: object | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def for_each_phone(
    phones: list[PhoneRef],
    work: Callable[[PhoneRef], object],
    *,
    max_workers: int = 32,
) -> list[PhoneOutcome]:
    """``work(phone)`` for every phone at once, each on its own thread (the work is waiting
    on phones and sockets, not the host's CPU); one phone's error is its outcome, never
    the others' end. Outcomes in the order of ``phones``. KeyboardInterrupt is not caught."""
    if not phones:
        return []

    def run(phone: PhoneRef) -> PhoneOutcome:
        try:
            return PhoneOutcome(phone, result=work(phone))
        except Exception as exc:  # noqa: BLE001 - the phone's outcome, reported per phone
            return PhoneOutcome(phone, error=exc)

    with ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(phones))), thread_name_prefix="qwenchat-phone"
    ) as pool:
        return list(pool.map(run, phones))
