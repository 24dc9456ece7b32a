"""``bench --all``: every phone's sweep at once, as one fleet run.

Each phone runs the one-phone sweep (``runner.new_run`` / ``resume_run``) unchanged, on its
own thread with its own store connection: its chip, thermal log, published figures and
verdict are its own run's. The fleet run (``fleet_storage``) ties the runs together and
records how each phone ended: ``done``; ``lost`` (the phone went away mid-sweep: its trials
so far are kept, ``--resume`` finishes it); ``failed`` (it could not start: no bundle, no
model); ``interrupted``. One phone's end is never the others'.

Every phone gets the same options, seed included: the same prompts, so the runs compare.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from qwenchat.bench.fleet_storage import FleetRecord, FleetStorage
from qwenchat.bench.runner import BenchOptions, BenchStopped, ProgressEvent, new_run, resume_run
from qwenchat.bench.storage import BenchStorage
from qwenchat.errors import DeviceLostError, QwenchatError
from qwenchat.store import open_store

if TYPE_CHECKING:
    from qwenchat.device.base import Device

Opener = Callable[[], "Device"]


class PhoneSkipped(QwenchatError):
    """The phone does not hold what the run needs (its bundle, the model): not in the set."""


@dataclass(frozen=True)
class FleetEvent:
    phone: str
    event: ProgressEvent | None  # a trial's progress; None with ``status`` set
    status: str | None = None  # the phone's end: done, lost, failed, interrupted
    note: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class PhoneEnd:
    phone: str
    status: str
    run_id: str | None
    note: str | None


def options_to_json(options: BenchOptions) -> dict:
    return asdict(options)


def options_from_json(data: dict) -> BenchOptions:
    known = BenchOptions.__dataclass_fields__
    return BenchOptions(**{k: v for k, v in data.items() if k in known})


def _bundle_facts(device: Device, work_dir: str) -> dict:
    """The QAIRT versions of the bundle the phone holds (its manifest), for the report."""
    from qwenchat.layout import PhoneLayout
    from qwenchat.manifest import BundleManifest

    try:
        manifest = BundleManifest.from_json(device.pull_bytes(PhoneLayout(work_dir).manifest_path))
    except (QwenchatError, ValueError, KeyError, TypeError):
        return {}
    return {"qairt_version": manifest.qairt_version,
            "binaries_qairt_version": manifest.binaries_qairt_version,
            "soc": manifest.soc, "arch": manifest.arch}  # fmt: skip


def _run_phone(
    fleet_id: str,
    phone: str,
    work_dir: str,
    opener: Opener,
    work: Callable[[Device, BenchStorage, Callable[[str], None]], str],
    on_event: Callable[[FleetEvent], None],
) -> PhoneEnd:
    """One phone's sweep; its end stored in the fleet row before this returns."""
    run_id: str | None = None
    with open_store() as store:
        fleets = FleetStorage(store)

        def started(rid: str) -> None:
            nonlocal run_id
            run_id = rid
            fleets.set_phone(fleet_id, phone, "running", run_id=rid)

        def end(status: str, note: str | None) -> PhoneEnd:
            fleets.set_phone(fleet_id, phone, status, run_id=run_id, note=note)
            on_event(FleetEvent(phone, None, status, note, run_id))
            return PhoneEnd(phone, status, run_id, note)

        try:
            device = opener()
        except QwenchatError as exc:  # not there now: --resume tries it again
            return end("lost", exc.message)
        try:
            with device:
                fleets.set_facts(fleet_id, phone, _bundle_facts(device, work_dir))
                work(device, BenchStorage(store), started)
        except PhoneSkipped as exc:
            return end("skipped", exc.message)
        except BenchStopped as stopped:
            run_id = stopped.run_id
            if stopped.exit_code == DeviceLostError.exit_code:
                return end("lost", stopped.message)
            resumable = "--resume" in (stopped.hint or "")
            return end("interrupted" if resumable else "stopped", stopped.message)
        except QwenchatError as exc:  # before its first trial: no bundle, another model...
            return end("lost" if run_id else "failed", exc.message)
        return end("done", None)


def run_fleet(
    phones: list[tuple[str, Opener]],
    options: BenchOptions,
    work_dir: str,
    *,
    on_event: Callable[[FleetEvent], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    check_phone: Callable[[Device], None] | None = None,
) -> tuple[str, list[PhoneEnd]]:
    """A new fleet run over ``phones``; returns its id and how each phone ended.
    ``check_phone`` runs on each opened phone before its sweep (the bundle is whole)."""
    on_event = _one_at_a_time(on_event)
    with open_store() as store:
        fleet_id = FleetStorage(store).create(
            options_to_json(options), work_dir, [name for name, _ in phones]
        )
    if on_start is not None:
        on_start(fleet_id)

    def work_for(name: str):  # noqa: ANN202
        def work(device: Device, storage: BenchStorage, started: Callable[[str], None]) -> str:
            if check_phone is not None:
                try:
                    check_phone(device)
                except QwenchatError as exc:
                    raise PhoneSkipped(exc.message, exc.hint) from exc
            return new_run(device, storage, options, work_dir=work_dir,
                           on_progress=_relay(name, on_event), on_start=started)  # fmt: skip

        return work

    todo = [(n, o, work_for(n)) for n, o in phones]
    return fleet_id, _all_at_once(fleet_id, work_dir, todo, on_event)


def resume_fleet(
    fleet: FleetRecord,
    openers: dict[str, Opener],
    *,
    on_event: Callable[[FleetEvent], None] | None = None,
) -> list[PhoneEnd]:
    """Finish the phones of ``fleet`` that did not: resume each one's run (from its last
    stored trial), or start it when it never began. ``openers``: by phone name."""
    on_event = _one_at_a_time(on_event)

    def work_for(name: str, run_id: str | None):  # noqa: ANN202
        options = options_from_json(fleet.options)

        def work(device: Device, storage: BenchStorage, started: Callable[[str], None]) -> str:
            if run_id is None:
                return new_run(device, storage, options, work_dir=fleet.work_dir,
                               on_progress=_relay(name, on_event), on_start=started)  # fmt: skip
            return resume_run(device, storage, run_id, on_progress=_relay(name, on_event),
                              on_start=started)  # fmt: skip

        return work

    todo = [(p.phone, openers[p.phone], work_for(p.phone, p.run_id))
            for p in fleet.unfinished if p.phone in openers]  # fmt: skip
    return _all_at_once(fleet.id, fleet.work_dir, todo, on_event)


def _relay(phone: str, on_event: Callable[[FleetEvent], None] | None):  # noqa: ANN202
    if on_event is None:
        return None
    return lambda event: on_event(FleetEvent(phone, event))


def _one_at_a_time(on_event: Callable[[FleetEvent], None] | None):  # noqa: ANN202
    """``on_event`` called by one phone's thread at a time (one line is never cut by another)."""
    if on_event is None:
        return None
    lock = threading.Lock()

    def locked(event: FleetEvent) -> None:
        with lock:
            on_event(event)

    return locked


class FleetInterrupted(QwenchatError):
    """Ctrl-C (or SIGTERM/SIGHUP) stopped a fleet run; every phone's trials are stored."""

    def __init__(self, fleet_id: str, why: str, exit_code: int) -> None:
        super().__init__(f"fleet bench run {fleet_id} stopped: {why}",
                         f"Finish it with `qwenchat bench --resume {fleet_id}`.")  # fmt: skip
        self.exit_code = exit_code


def _interrupt(thread_ids: list[int], exc: KeyboardInterrupt) -> None:
    """Raise ``exc``'s kind in each phone's thread: there the one-phone runner does what it
    does on Ctrl-C (stops Genie on the phone, stores the run as interrupted). A thread
    blocked on a phone's socket gets it when that read returns (every read is bounded)."""
    import ctypes

    for ident in thread_ids:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(type(exc)))


def _all_at_once(fleet_id: str, work_dir: str, todo: list, on_event) -> list[PhoneEnd]:  # noqa: ANN001
    from concurrent.futures import ThreadPoolExecutor, wait

    from qwenchat import signals

    idents: list[int] = []

    def one(item) -> PhoneEnd:  # noqa: ANN001
        idents.append(threading.get_ident())
        name, opener, work = item
        return _run_phone(fleet_id, name, work_dir, opener, work, on_event or (lambda _e: None))

    if not todo:
        return []
    pool = ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="qwenchat-bench")
    futures = [pool.submit(one, item) for item in todo]
    try:
        # Waited in short steps: Ctrl-C reaches the main thread between them.
        while wait(futures, timeout=0.5).not_done:
            pass
    except KeyboardInterrupt as exc:
        _interrupt(list(idents), exc)
        wait(futures, timeout=120)
        pool.shutdown(wait=False, cancel_futures=True)
        raise FleetInterrupted(fleet_id, f"interrupted ({exc})" if str(exc) else "interrupted",
                               signals.exit_code(exc)) from None  # fmt: skip
    pool.shutdown(wait=True)
    return [f.result() for f in futures]
