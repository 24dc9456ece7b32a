"""push-assets to several phones at once: a worker per phone, a bundle per Hexagon arch.

Each phone gets the one-phone push (``push.push_assets``) unchanged: its own connection, its
own lock on the phone, its own skip-unchanged decision; phones differ only in the plan
(their chip's configs and runtime, and the bundle for their arch). A phone's failure is its
result (``PhonePushResult``), never the others' end.

Bundles: ``--bundle v79=DIR`` gives the bundle for Hexagon v79 phones, ``--bundle
v75=DIR2`` for v75 ones (context binaries are compiled for one arch: a v79 bundle does not
run on an SM8650); a bare ``--bundle DIR`` is for every phone no ``ARCH=`` bundle names, as
with one phone. A phone no bundle fits is skipped with one line.

Host work is done once: a plan per (bundle, chip), and each host file hashed once for all
phones (``_SharedHashing``): the pushes start at once, and a push needing a hash another
push is computing waits for it instead of reading the same GBs again.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenchat.assets.bundle import BundlePlan
from qwenchat.assets.push import PushProgress, PushReport, detect_soc, push_assets
from qwenchat.device.base import Device
from qwenchat.errors import ConfigError, QwenchatError, UsageError
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import HashCache
from qwenchat.soc import soc_info

_ARCH = re.compile(r"^(v\d{2,3})=(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class BundleChoice:
    arch: str | None  # "v79"; None: for every arch no other choice names
    path: Path

    @property
    def label(self) -> str:
        return f"{self.arch}={self.path}" if self.arch else str(self.path)


def parse_bundle_choices(values: list[str]) -> list[BundleChoice]:
    """``--bundle`` values: ``ARCH=DIR`` (ARCH a Hexagon arch such as v79) or a bare DIR.
    Two bundles for one arch, or two bare ones, are refused (which would be meant?)."""
    choices: list[BundleChoice] = []
    for value in values:
        match = _ARCH.match(value.strip())
        choice = (
            BundleChoice(match.group(1).lower(), Path(match.group(2)))
            if match
            else BundleChoice(None, Path(value))
        )
        clash = [c for c in choices if c.arch == choice.arch]
        if clash:
            which = f"Hexagon {choice.arch}" if choice.arch else "every arch (no ARCH=)"
            raise UsageError(
                f"two bundles for {which}: {clash[0].path} and {choice.path}",
                "Give one --bundle per arch: --bundle v79=DIR --bundle v75=DIR2.",
            )
        choices.append(choice)
    return choices


def bundle_for(choices: list[BundleChoice], arch: str | None) -> BundleChoice | None:
    """The bundle for a phone of Hexagon ``arch``: its own arch's, else the bare one."""
    if arch is not None:
        for choice in choices:
            if choice.arch == arch.lower():
                return choice
    for choice in choices:
        if choice.arch is None:
            return choice
    return None


@dataclass
class PhonePushResult:
    phone: str  # its name: SERIAL, HOST:PORT, or SERIAL@SERVER
    status: str  # "sent", "unchanged", "skipped" or "failed"
    soc: str | None = None
    arch: str | None = None
    bundle: str | None = None  # the --bundle value used
    message: str = ""  # why it was skipped or failed (one line)
    hint: str = ""
    report: PushReport | None = None
    seconds: float = 0.0  # host clock, open to done

    def to_dict(self) -> dict:
        return {
            "phone": self.phone, "status": self.status, "soc": self.soc, "arch": self.arch,
            "bundle": self.bundle, "message": self.message, "hint": self.hint,
            "seconds": round(self.seconds, 3),
            "report": self.report.to_dict() if self.report is not None else None,
        }  # fmt: skip


class FleetProgress:
    """A progress display for several phones; the base shows nothing."""

    def for_phone(self, phone: str) -> PushProgress:
        return PushProgress()

    def phone_done(self, result: PhonePushResult) -> None: ...

    def end(self) -> None: ...


@dataclass
class _Planned:
    phone: str
    device: Device
    plan: BundlePlan
    choice: BundleChoice
    started: float


@dataclass
class FleetPushRequest:
    """What every phone gets: the bundles by arch and how to plan and push them."""

    choices: list[BundleChoice]
    plan_for: Callable[[Path, str, HashCache], BundlePlan]  # (bundle dir, SoC, cache) -> plan
    layout: PhoneLayout
    verify: bool = False
    break_lock: bool = False
    notes: list[str] = field(default_factory=list)


def push_fleet(
    phones: list[tuple[str, Callable[[], Device]]],
    request: FleetPushRequest,
    cache: HashCache,
    progress: FleetProgress | None = None,
    *,
    max_workers: int = 32,
) -> list[PhonePushResult]:
    """Push to every ``(name, opener)`` at once; a result per phone, in their order.

    Two phases: every phone is opened, asked its chip and planned (skipped when no bundle
    fits its arch); the host files of every plan are hashed once; then each planned phone's
    push runs on its own thread.
    """
    from concurrent.futures import ThreadPoolExecutor

    progress = progress or FleetProgress()
    results: dict[str, PhonePushResult] = {}
    lock = threading.Lock()
    # One plan per (bundle, chip), made once however many phones share it (planning reads
    # and checks the tokenizer: seconds, not to be paid per phone).
    plans: dict[tuple[Path, str], list] = {}

    def plan_of(path: Path, soc: str) -> BundlePlan:
        with lock:
            entry = plans.setdefault((path, soc), [threading.Lock(), None, None])
        with entry[0]:
            if entry[1] is None and entry[2] is None:
                try:
                    entry[1] = request.plan_for(path, soc, cache)
                except (QwenchatError, OSError) as exc:
                    entry[2] = exc
        if entry[2] is not None:
            raise entry[2]
        return entry[1]

    def done(result: PhonePushResult) -> None:
        with lock:
            results[result.phone] = result
        progress.phone_done(result)

    def plan_one(item: tuple[str, Callable[[], Device]]) -> _Planned | None:
        name, opener = item
        started = time.perf_counter()
        device: Device | None = None
        soc = arch = None
        try:
            device = opener()
            soc = detect_soc(device)
            try:
                arch = soc_info(soc).dsp_arch
            except ConfigError:
                device.close()
                done(PhonePushResult(name, "skipped", soc, None, message=(
                    f"chip {soc} is not one qwenchat knows: no Hexagon arch, no bundle")))  # fmt: skip
                return None
            choice = bundle_for(request.choices, arch)
            if choice is None:
                device.close()
                given = ", ".join(c.label for c in request.choices)
                done(PhonePushResult(name, "skipped", soc, arch, message=(
                    f"no bundle for Hexagon {arch} ({soc}); given: {given}")))  # fmt: skip
                return None
            plan = plan_of(choice.path, soc)
            return _Planned(name, device, plan, choice, started)
        except (QwenchatError, OSError) as exc:
            if device is not None:
                device.close()
            done(_failed(name, exc, soc, arch, started))
            return None

    workers = max(1, min(max_workers, len(phones)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qwenchat-plan") as pool:
        planned = [p for p in pool.map(plan_one, phones) if p is not None]
    hashing = _SharedHashing(cache)

    def push_one(p: _Planned) -> None:
        try:
            report = push_assets(
                p.device, p.plan, request.layout, verify=request.verify,
                progress=progress.for_phone(p.phone), cache=hashing.view(),  # type: ignore[arg-type]
                break_lock=request.break_lock,
            )  # fmt: skip
            status = "sent" if (report.files_sent or report.resumed) else "unchanged"
            done(PhonePushResult(p.phone, status, p.plan.soc, p.plan.arch, p.choice.label,
                                 report=report, seconds=time.perf_counter() - p.started))  # fmt: skip
        except (QwenchatError, OSError) as exc:
            result = _failed(p.phone, exc, p.plan.soc, p.plan.arch, p.started)
            result.bundle = p.choice.label
            done(result)
        finally:
            p.device.close()

    if planned:
        workers = max(1, min(max_workers, len(planned)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qwenchat-push")
        try:
            list(pool.map(push_one, planned))
        except KeyboardInterrupt:
            # Ctrl-C: every phone's link is closed, so each push stops at once (its files
            # stay .partial, the manifest is written last: run again to resume).
            for p in planned:
                p.device.close()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            progress.end()
    else:
        progress.end()
    return [results[name] for name, _ in phones if name in results]


def _failed(
    name: str, exc: BaseException, soc: str | None, arch: str | None, started: float
) -> PhonePushResult:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    hint = getattr(exc, "hint", None) or ""
    return PhonePushResult(name, "failed", soc, arch, message=message, hint=hint,
                           seconds=time.perf_counter() - started)  # fmt: skip


class _SharedHashing:
    """Host hashes computed once for every phone's push: the first push to need a file's
    hash computes it (through the hash cache), the others wait for that result. A push
    that stops early (its phone failed) gives up only its own waits: a file it was hashing
    is hashed again by the next push that needs it."""

    def __init__(self, cache: HashCache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._futures: dict[Path, Future[str]] = {}

    def view(self) -> _HashView:
        return _HashView(self)

    def sha256_many(self, paths: list[Path], workers: int, stop: threading.Event | None
                    ) -> tuple[dict[Path, str], int]:  # fmt: skip
        mine: list[tuple[Path, Future[str]]] = []
        with self._lock:
            for path in paths:
                if path not in self._futures:
                    self._futures[path] = Future()
                    mine.append((path, self._futures[path]))
        if mine:
            try:
                shas = self.cache.sha256_many([p for p, _ in mine], workers, stop=stop)
            except BaseException as exc:
                with self._lock:
                    for path, future in mine:
                        self._futures.pop(path, None)
                        future.set_exception(exc)
                raise
            for path, future in mine:
                future.set_result(shas[path])
        result: dict[Path, str] = {}
        for path in paths:
            with self._lock:
                found = self._futures.get(path)
            try:
                result[path] = found.result() if found is not None else ""
            except BaseException:  # its hasher stopped: hash it here
                result[path] = ""
            if not result[path]:
                result[path] = self.cache.sha256_many([path], 1, stop=stop)[path]
        return result, len(mine)


class _HashView:
    """What ``push_assets`` uses of a HashCache, for one phone's push over the shared
    hashing (its counts are its own: files it hashed, hashes it was given)."""

    def __init__(self, shared: _SharedHashing) -> None:
        self._shared = shared
        self.hashed = 0
        self.hits = 0

    @property
    def notes(self) -> list[str]:
        return self._shared.cache.notes

    @property
    def changed(self) -> list[Any]:
        return self._shared.cache.changed

    def sha256_many(
        self, paths: Iterable[Path], workers: int = 2, *, rehash: bool = False,
        stop: threading.Event | None = None,
    ) -> dict[Path, str]:  # fmt: skip
        paths = list(paths)
        if rehash:  # --verify reads every file again, for each phone: its whole point
            before = self._shared.cache.hashed
            result = self._shared.cache.sha256_many(paths, workers, rehash=True, stop=stop)
            self.hashed += self._shared.cache.hashed - before
            return result
        result, computed = self._shared.sha256_many(paths, workers, stop)
        self.hashed += computed
        self.hits += len(paths) - computed
        return result

    def summary(self, path: Path, kind: str, compute: Callable[[Path], dict]) -> dict:
        return self._shared.cache.summary(path, kind, compute)

    def close(self) -> None:
        """The shared cache is closed by its owner."""
