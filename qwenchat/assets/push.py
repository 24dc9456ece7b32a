"""Putting a ``BundlePlan`` on the phone: only what differs, each file verified, resumable,
and the bundle on the phone always either the old one or the new one as a whole.

Protocol (a file on the phone never looks complete when it is not):

1. One shell call reads the phone's manifest, push journal and lock, the size of every
   planned file (and of any ``.partial`` left over), free space and the model name
   (``phone_state``). When the manifest already describes exactly this bundle and the
   sizes agree, that one call is all (``--verify``: plus one ``sha256sum``).
2. Otherwise the push takes the phone's lock (``lock.py``: one push at a time, with owner
   and age, stale locks taken over safely) and reads the state again under it.
3. A file the manifest (or the journal of an interrupted push) vouches for, with the right
   size, is kept. A file nobody vouches for but whose size matches is hashed on the phone
   and kept when it matches; so is a complete ``.partial`` left by an interrupted run,
   which is renamed into place instead of being sent again.
4. Free space is checked against the peak the push will need: with overlapped hashing
   (below) file N's ``.partial``, still being hashed, and file N+1's are on the phone
   together (the old copies of both too); when that does not fit but one file at a time
   does, the push does not overlap. A push that cannot finish is refused here, before the
   bundle on the phone is touched.
5. Before the first file changes, one command (under the lock) removes files of the old
   bundle that the new one does not use, writes ``.push-journal`` (which bundle is being
   put there, and which files are already verified in place) and removes ``manifest.json``:
   from here until step 7 the phone holds no manifest, and ``bundle_integrity`` calls it
   incomplete, never whole.
6. Each file goes to ``<name>.partial``, is hashed on the phone (``sha256sum``) and renamed
   into place only when the hash matches (and the lock is still ours); its line is added
   to the journal in the same command. The journal and the manifest are checked the same
   way (hash and rename in one command), so neither can look whole and be damaged. A file
   that arrives damaged is sent once more; twice damaged, the host file is hashed again to
   tell a bad host copy from a bad link. Through
   Google's adb server the check overlaps the sending of the next file (never more than
   one file behind: the next send waits for it); adb-shell (direct) cannot run a shell
   while a sync push is in flight on its connection, so there it follows each file.
7. The manifest is written last (``.partial`` + ``mv``, the journal removed in the same
   command), then the lock is released.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwenchat.assets.bundle import BundleFile, BundlePlan, plan_bundle
from qwenchat.assets.lock import PhoneLock, PushLockedError, PushLockLostError
from qwenchat.assets.phone_state import (
    PARTIAL_SUFFIX,
    PhoneState,
    journal_path,
    read_phone_state,
    sha256_on_phone,
)
from qwenchat.device.base import Device
from qwenchat.errors import (
    BundleError,
    ConfigError,
    DeviceCommandError,
    DeviceError,
    DeviceStorageError,
    PhoneFullError,
    says_phone_full,
)
from qwenchat.layout import DEFAULT_WORK_DIR, PhoneLayout
from qwenchat.manifest import BundleManifest, FileEntry, HashCache, PushJournal, sha256_file
from qwenchat.shellwords import quote

RETRIES = 1  # a file whose hash differs on the phone is sent once more, then we give up

__all__ = [
    "PushInterruptedError",
    "PushLockLostError",
    "PushLockedError",
    "PushProgress",
    "PushReport",
    "detect_soc",
    "prepare_phone",
    "push_assets",
]


class PushInterruptedError(DeviceError):
    """The push stopped part-way (Ctrl-C or a lost connection); run it again to resume."""

    default_hint = "Run the same command again: files already verified are not sent again."


class PushProgress:
    """Callbacks for a progress display. The base class shows nothing."""

    def begin(self, files: int, total_bytes: int) -> None: ...

    def status(self, text: str) -> None: ...

    def file_started(self, remote: str, size: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_finished(self, remote: str) -> None: ...

    def end(self) -> None: ...


@dataclass
class PushReport:
    work_dir: str
    files_sent: int
    files_skipped: int
    bytes_sent: int
    bytes_total: int
    seconds: float  # host wall clock for the whole push_assets call
    send_seconds: float  # host wall clock from first byte sent to last file verified
    verified: bool  # --verify: every file was re-hashed on the phone and now matches
    simulated: bool
    sent: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # found damaged by --verify, re-sent
    resumed: list[str] = field(default_factory=list)  # complete .partial renamed, not re-sent
    retried: list[str] = field(default_factory=list)  # arrived damaged once, sent again
    host_files_hashed: int = 0  # files read and hashed on the host in this run
    host_cache_hits: int = 0  # files whose hash came from the cache (not read)
    phone_files_hashed: int = 0  # files hashed by sha256sum on the phone in this run
    shell_calls: int = 0
    bundle_id: str = ""
    model: str | None = None
    qairt_version: str | None = None
    binaries_qairt_version: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a QAIRT version mismatch
    notes: list[str] = field(default_factory=list)  # e.g. a stale lock taken over

    @property
    def mb_per_s(self) -> float:
        return self.bytes_sent / 1e6 / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def verify_text(self) -> str:
        if not self.verified:
            return ""
        fixed = (
            f", repaired {len(self.repaired)}: {', '.join(self.repaired)}" if self.repaired else ""
        )
        total = self.files_sent + self.files_skipped
        return f"verified: all {total} file(s) re-hashed on the host and the phone{fixed}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mb_per_s"] = round(self.mb_per_s, 1)
        data["seconds"] = round(self.seconds, 3)
        data["send_seconds"] = round(self.send_seconds, 3)
        return data


def format_bytes(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} kB"


class _CountingDevice:
    """Counts shell calls (the report shows the unchanged case costs one)."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.shell_calls = 0

    def shell(self, command: str, *, timeout: float | None = 60.0):  # noqa: ANN201
        self.shell_calls += 1
        return self.device.shell(command, timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.device, name)


def host_manifest(
    plan: BundlePlan, cache: HashCache, rehash: bool = False, stop: threading.Event | None = None
) -> BundleManifest:
    """Size + SHA-256 of every planned file; files on disk come from the hash cache unless
    ``rehash`` (``--verify``), which reads them all again and refuses a file whose bytes
    changed while its size and mtime did not. ``stop`` ends the hashing early
    (HashingStopped): the push no longer needs it."""
    on_disk = [f.local for f in plan.files if f.local is not None]
    shas = cache.sha256_many(on_disk, rehash=rehash, stop=stop)
    if cache.changed:
        first = cache.changed[0]
        more = f" (and {len(cache.changed) - 1} more)" if len(cache.changed) > 1 else ""
        raise BundleError(
            f"host file {first.path} changed without its size or time changing{more}: SHA-256 "
            f"now {first.now[:12]}, {first.cached[:12]} when first read; the host copy may "
            "be damaged (bit rot)",
            "Get the file again (download, fetch or copy); if you changed it on purpose, "
            "`touch` it and push again.",
        )
    files: dict[str, FileEntry] = {}
    for f in plan.files:
        if f.local is not None:
            files[f.remote] = FileEntry(f.size, shas[f.local])
        else:
            files[f.remote] = FileEntry(f.size, hashlib.sha256(f.data or b"").hexdigest())
    return BundleManifest(
        files=files,
        model=plan.model,
        soc=plan.soc,
        arch=plan.arch,
        qairt_version=plan.qairt_version,
        binaries_qairt_version=plan.binaries_qairt_version,
    )


def _peak_need(order: list[BundleFile], state: PhoneState, *, overlap: bool = False) -> int:
    """Most extra bytes the phone holds at once. One file at a time: its ``.partial`` beside
    its old copy until the rename. ``overlap``: file N's ``.partial`` (being hashed, its old
    copy still in place) and file N+1's arrive together, never more (``_send`` waits)."""
    delta = peak = 0
    previous: BundleFile | None = None
    for f in order:
        old = state.sizes.get(f.remote, 0)
        peak = max(peak, delta + f.size)
        if overlap and previous is not None:
            # File N-1 not yet renamed: its growth is not counted yet, its .partial in full.
            before = state.sizes.get(previous.remote, 0)
            peak = max(peak, delta - (previous.size - before) + previous.size + f.size)
        delta += f.size - old
        previous = f
    return max(peak, delta)


@dataclass
class _Decision:
    order: list[BundleFile]  # to send, in plan order
    resumed: list[str]  # complete .partial files that match: renamed into place
    repaired: list[str]
    hashed: int  # files hashed on the phone to decide


def _decide(
    dev: Any,
    layout: PhoneLayout,
    plan: BundlePlan,
    state: PhoneState,
    wanted_future: Future[BundleManifest],
    verify: bool,
    progress: PushProgress,
    phone_hashes: dict[str, str],
) -> _Decision:
    """What must be sent, given what the phone holds. ``phone_hashes`` (remote → sha) is
    reused and filled: hashes taken earlier in this run are not taken again."""
    known = state.known
    to_send: list[str] = []
    to_hash: list[str] = []  # present with the right size: the phone's hash decides
    for f in plan.files:
        # A .partial of the full size is a send that finished but was never renamed (the
        # run stopped in between): if its hash matches, it is renamed instead of re-sent.
        if state.partial_sizes.get(f.remote) == f.size:
            to_hash.append(f.remote + PARTIAL_SUFFIX)
        if state.sizes.get(f.remote) != f.size:
            to_send.append(f.remote)  # no hash needed to know it must go
            continue
        if verify or f.remote not in known:
            to_hash.append(f.remote)  # unknown (e.g. an interrupted run): hash decides
            continue
        progress.status("hashing the bundle on the host (cached after the first time)")
        if known[f.remote] != wanted_future.result().files[f.remote]:
            to_send.append(f.remote)  # vouched for, but as an older version
    hashed = 0
    need = [r for r in to_hash if r not in phone_hashes]
    if need:
        sizes = {f.remote: f.size for f in plan.files}
        total = sum(sizes[r.removesuffix(PARTIAL_SUFFIX)] for r in need)
        progress.status(f"checking {len(need)} file(s) on the phone with SHA-256")
        phone_hashes.update(sha256_on_phone(dev, layout, need, total))
        hashed = len(need)
    resumed: list[str] = []
    repaired: list[str] = []
    if to_hash:
        progress.status("hashing the bundle on the host (cached after the first time)")
        wanted = wanted_future.result()
        for r in to_hash:
            if not r.endswith(PARTIAL_SUFFIX) and phone_hashes.get(r) != wanted.files[r].sha256:
                to_send.append(r)
                if verify and known.get(r) == wanted.files[r]:
                    repaired.append(r)  # the manifest vouched for it, yet it differs
        for r in to_hash:
            base = r.removesuffix(PARTIAL_SUFFIX)
            if r != base and base in to_send and phone_hashes.get(r) == wanted.files[base].sha256:
                resumed.append(base)
                to_send.remove(base)
    order = [f for f in plan.files if f.remote in set(to_send)]
    return _Decision(order, resumed, repaired, hashed)


def push_assets(
    device: Device,
    plan: BundlePlan,
    layout: PhoneLayout,
    *,
    verify: bool = False,
    progress: PushProgress | None = None,
    cache: HashCache | None = None,
    overlap: bool | None = None,
    break_lock: bool = False,
) -> PushReport:
    """Make the phone hold exactly ``plan`` under ``layout.work_dir``; see the module doc.

    ``verify``: re-hash every file on the host and on the phone, repair what differs.
    ``overlap``: hash file N on the phone while file N+1 is being sent. Default: where the
    device can carry a shell stream during a push (``Device.concurrent_streams``); otherwise
    each file is verified right after sending it. ``break_lock``: take over the phone's push
    lock even when its owner may still be at work.
    """
    if overlap is None:
        overlap = device.concurrent_streams
    started = time.perf_counter()
    progress = progress or PushProgress()
    dev = _CountingDevice(device)
    own_cache = cache is None
    cache = cache or HashCache()
    lock: PhoneLock | None = None
    notes: list[str] = []
    # Host hashing runs while the phone is asked what it holds and, on a first push, while
    # the first files are already on the wire: their hashes are only needed to verify them.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwenchat-host-hash")
    # Set when the push ends, however it ends: a push that fails early (another push's lock,
    # no space, a vanished phone) says so at once instead of after hashing GBs it no longer
    # needs, and leaves no thread reading the cache it closes.
    stop_hashing = threading.Event()
    try:
        wanted_future = hasher.submit(host_manifest, plan, cache, verify, stop_hashing)
        progress.status("reading the phone's work dir")
        remotes = [f.remote for f in plan.files]
        state = read_phone_state(dev, layout, remotes)
        lock_present = state.lock is not None and state.lock.present
        if lock_present and state.lock.stale_reason() is None and not break_lock:
            raise PushLockedError(
                f"another push is writing to {layout.work_dir} on this phone "
                f"({state.lock.describe()})"
            )

        phone_hashes: dict[str, str] = {}
        decision = None
        if state.manifest is not None and not lock_present:
            # Maybe nothing to do: decided without the lock (only reads, at most sha256sum).
            decision = _decide(dev, layout, plan, state, wanted_future, verify, progress,
                               phone_hashes)  # fmt: skip
            if (
                not decision.order
                and not decision.resumed
                and state.manifest.identity() == wanted_future.result().identity()
            ):
                progress.end()
                return _report(plan, layout, state, decision, [], verify, started, 0.0, cache,
                               dev, wanted_future.result(), [])  # fmt: skip

        lock = PhoneLock(dev, layout, break_lock=break_lock)
        progress.status("taking the phone's push lock")
        lock.acquire(state.lock)
        fresh = read_phone_state(dev, layout, remotes)
        if decision is None or fresh.fingerprint != state.fingerprint:
            phone_hashes.clear()  # something changed between the two reads: look again
            decision = _decide(dev, layout, plan, fresh, wanted_future, verify, progress,
                               phone_hashes)  # fmt: skip
            state = fresh
        else:
            state = fresh
        wanted = wanted_future.result()
        by_remote = {f.remote: f for f in plan.files}
        # Files an older bundle left (e.g. ctx-bins of another export): GBs of dead weight.
        stale = [r for r in state.known if r not in by_remote and _safe_relative(r)]
        if overlap and not _fits(decision.order, state, stale, wanted, overlap=True):
            # Room for one file's new copy at a time, not two: verify each file before the
            # next is sent (slower, but the push can finish).
            overlap = False
            notes.append(
                "the phone has room for one file's new copy at a time: each file was "
                "hashed before the next was sent"
            )
        _check_space(decision.order, state, layout, stale, extra=_small_files(wanted))

        send_started = time.perf_counter()
        retried: list[str] = []
        changing = bool(decision.order or decision.resumed or stale)
        if changing:
            _begin(lock, dev, layout, wanted, state, decision, stale)
        hashed = decision.hashed + _send(
            lock, dev, layout, decision.order, wanted_future, progress, overlap, retried
        )
        _commit(lock, dev, layout, wanted, state, decision, changing)
        send_seconds = time.perf_counter() - send_started
        progress.end()
        decision.hashed = hashed
        report = _report(plan, layout, state, decision, decision.order, verify, started,
                         send_seconds, cache, dev, wanted, retried, lock)  # fmt: skip
        report.notes.extend(notes)
        return report
    except PhoneFullError:
        raise
    except DeviceCommandError as exc:
        if says_phone_full(exc.message):  # a shell command on the phone (mv, echo >>) met ENOSPC
            raise _full("a command on the phone", layout, dev) from exc
        raise
    finally:
        if lock is not None:
            lock.release()
        stop_hashing.set()
        hasher.shutdown(wait=True, cancel_futures=True)
        if own_cache:
            cache.close()


def _report(
    plan: BundlePlan,
    layout: PhoneLayout,
    state: PhoneState,
    decision: _Decision,
    order: list[BundleFile],
    verify: bool,
    started: float,
    send_seconds: float,
    cache: HashCache,
    dev: _CountingDevice,
    wanted: BundleManifest,
    retried: list[str],
    lock: PhoneLock | None = None,
) -> PushReport:
    return PushReport(
        work_dir=layout.work_dir,
        files_sent=len(order),
        files_skipped=len(plan.files) - len(order),
        bytes_sent=sum(f.size for f in order),
        bytes_total=plan.total_size,
        seconds=time.perf_counter() - started,
        send_seconds=send_seconds,
        verified=verify,
        simulated=state.simulated,
        sent=[f.remote for f in order],
        repaired=decision.repaired,
        resumed=decision.resumed,
        retried=retried,
        host_files_hashed=cache.hashed,
        host_cache_hits=cache.hits,
        phone_files_hashed=decision.hashed,
        shell_calls=dev.shell_calls,
        bundle_id=wanted.bundle_id,
        model=wanted.model,
        qairt_version=wanted.qairt_version,
        binaries_qairt_version=wanted.binaries_qairt_version,
        warnings=list(plan.warnings),
        notes=list(cache.notes) + (list(lock.notes) if lock is not None else []),
    )


def _safe_relative(name: str) -> bool:
    """A manifest name we may delete: plainly inside the work dir (the phone's manifest is
    data from the phone, not trusted to name paths elsewhere)."""
    norm = posixpath.normpath(name)
    return norm == name and not name.startswith(("/", "../")) and name not in (".", "..")


def _full(where: str, layout: PhoneLayout, dev: Any) -> PhoneFullError:
    """The phone filled up during the push (something else wrote, or df was wrong)."""
    from qwenchat.device.space import full_hint

    return PhoneFullError(
        f"the phone's storage is full (No space left on device, {where}); the push stopped "
        f"and the files it verified stay in {layout.work_dir}",
        full_hint(dev, layout.work_dir, PhoneFullError.default_hint),
    )


def _small_files(wanted: BundleManifest) -> int:
    """The journal and the manifest, each written as a ``.partial`` beside the bundle."""
    return 2 * len(wanted.to_json().encode())


def _free(state: PhoneState, stale: list[str]) -> int:
    free = (state.free_bytes or 0) + sum(state.partial_sizes.values())  # leftovers go first
    known = state.known
    return free + sum(known[r].size for r in stale if r in known)


def _fits(
    order: list[BundleFile],
    state: PhoneState,
    stale: list[str],
    wanted: BundleManifest,
    *,
    overlap: bool,
) -> bool:
    if state.free_bytes is None:
        return True
    need = _peak_need(order, state, overlap=overlap) + _small_files(wanted)
    return need <= _free(state, stale)


def _check_space(
    order: list[BundleFile],
    state: PhoneState,
    layout: PhoneLayout,
    stale: list[str],
    *,
    extra: int = 0,
) -> None:
    """Refuse a push that cannot finish, before the bundle on the phone is touched.
    ``extra``: the journal's and the manifest's bytes."""
    if state.free_bytes is None:
        return  # df unreadable: the push itself will fail cleanly on a full disk
    need = _peak_need(order, state) + extra
    free = _free(state, stale)
    if need > free:
        raise DeviceStorageError(
            f"needs {format_bytes(need)}, phone has {format_bytes(free)} free in {layout.work_dir}"
        )


def _journal_line(name: str, entry: FileEntry) -> str:
    return PushJournal.line(name, entry).rstrip("\n")


def _begin(
    lock: PhoneLock,
    dev: Any,
    layout: PhoneLayout,
    wanted: BundleManifest,
    state: PhoneState,
    decision: _Decision,
    stale: list[str],
) -> None:
    """Before the first file changes: drop the old bundle's extra files and the manifest,
    write the journal (one command under the lock), and put complete ``.partial`` files that
    matched into place."""
    work = layout.work_dir.rstrip("/") + "/"
    changing = {f.remote for f in decision.order} | set(decision.resumed)
    journal = PushJournal(wanted.bundle_id, wanted.model)
    journal.verified = {r: e for r, e in wanted.files.items() if r not in changing}
    journal_file = journal_path(layout)
    leftovers = [r for r in state.partial_sizes if r not in decision.resumed]
    removals = [quote(work + r) for r in stale] + [
        quote(work + r + PARTIAL_SUFFIX) for r in leftovers
    ]
    before = []
    if removals:
        # While the manifest still vouches for them: an interruption here leaves a manifest
        # that lists missing files (refused as damaged, and the next push removes them
        # again), never orphans nobody lists.
        before.append(f"rm -f {' '.join(removals)}")
    steps = [f"rm -f {quote(layout.manifest_path)}"]
    for r in decision.resumed:
        steps.append(
            f"mv -f {quote(work + r + PARTIAL_SUFFIX)} {quote(work + r)}"
            f" && echo {quote(_journal_line(r, wanted.files[r]))} >> {quote(journal_file)}"
        )
    # The journal is checked before anything is removed: the old files go only once a
    # journal that vouches for the right bundle has arrived whole.
    _put_checked(lock, dev, journal.text().encode(), journal_file, steps,
                 "starting the push (journal, old files, manifest)", before=before)  # fmt: skip


def _commit(
    lock: PhoneLock,
    dev: Any,
    layout: PhoneLayout,
    wanted: BundleManifest,
    state: PhoneState,
    decision: _Decision,
    changed: bool,
) -> None:
    """The manifest, last: from now on the phone holds this bundle, whole."""
    steps = [f"rm -f {quote(journal_path(layout))}"]
    if not changed:
        work = layout.work_dir.rstrip("/") + "/"
        leftovers = [quote(work + r + PARTIAL_SUFFIX) for r in state.partial_sizes]
        if leftovers:
            steps.append(f"rm -f {' '.join(leftovers)}")
    _put_checked(lock, dev, wanted.to_json().encode(), layout.manifest_path, steps,
                 "writing the manifest")  # fmt: skip


_DAMAGED = "qwenchat-sha256-differs"


def _put_checked(
    lock: PhoneLock,
    dev: Any,
    data: bytes,
    path: str,
    then: list[str],
    what: str,
    *,
    before: list[str] | None = None,
) -> None:
    """Write a small file qwenchat makes (the journal, the manifest) as every bundle file:
    to ``.partial``, hashed on the phone, renamed into place only when whole, ``before`` and
    ``then`` run around the rename in the same command (under the lock). A damaged arrival
    is sent once more."""
    want = hashlib.sha256(data).hexdigest()
    tmp = path + PARTIAL_SUFFIX
    rename = " && ".join([*(before or []), f"mv -f {quote(tmp)} {quote(path)}", *then])
    script = (
        f"h=$(sha256sum {quote(tmp)}); "
        f'if [ "${{h%% *}}" = {want} ]; then {rename}; '
        f"else rm -f {quote(tmp)}; echo {_DAMAGED}; fi"
    )
    for _ in range(RETRIES + 1):
        dev.push_bytes(data, tmp)
        if _DAMAGED not in lock.run(script, what).text:
            return
    raise DeviceCommandError(
        f"{posixpath.basename(path)} arrived damaged on the phone twice (SHA-256 differs) "
        f"while {what}; the link or the phone's storage corrupts what is sent",
        "Check the cable or connection and run again with --verify.",
    )


def _send(
    lock: PhoneLock,
    dev: Any,
    layout: PhoneLayout,
    order: list[BundleFile],
    wanted: Future[BundleManifest],
    progress: PushProgress,
    overlap: bool,
    retried: list[str],
) -> int:
    """Send ``order``; returns how many files were hashed on the phone."""
    if not order:
        return 0
    work = layout.work_dir.rstrip("/") + "/"
    journal_file = journal_path(layout)
    progress.begin(len(order), sum(f.size for f in order))
    hashed = 0
    pool = ThreadPoolExecutor(max_workers=1) if overlap else None
    pending: list[tuple[BundleFile, Future[bool] | bool]] = []
    current: BundleFile | None = None
    ctrl_c = _CtrlC(dev, progress)

    def place(f: BundleFile) -> bool:
        return _verify_and_place(lock, dev, layout, journal_file, f, wanted)

    try:
        ctrl_c.install()
        for f in order:
            if len(pending) >= 2:
                # Never more than one file behind: file N-2 is renamed into place before file
                # N's .partial arrives (the space check counts two .partial files, not more).
                earlier = pending[-2][1]
                if isinstance(earlier, Future):
                    earlier.result()
            current = f
            _push_one(dev, work, f, ctrl_c)
            if pool is not None:
                pending.append((f, pool.submit(place, f)))
            else:
                pending.append((f, place(f)))
            hashed += 1
            progress.file_finished(f.remote)
        current = None
        for f, outcome in pending:
            ok = outcome.result() if isinstance(outcome, Future) else outcome
            for _ in range(RETRIES):
                if ok:
                    break
                retried.append(f.remote)
                progress.status(f"{f.remote} arrived damaged: sending it again")
                current = f
                _push_one(dev, work, f, ctrl_c)
                ok = place(f)
                hashed += 1
                current = None
            if not ok:
                _damaged_twice(f, wanted.result().files[f.remote].sha256)
    except (KeyboardInterrupt, Exception) as exc:
        where = current.remote if current else "the bundle"
        if ctrl_c.pressed or isinstance(exc, KeyboardInterrupt):
            stopped = PushInterruptedError(
                f"interrupted while sending {where}; run again to resume"
            )
            stopped.exit_code = 130  # the shell's code for Ctrl-C
            raise stopped from None
        if isinstance(exc, DeviceStorageError) or (
            isinstance(exc, DeviceCommandError) and says_phone_full(exc.message)
        ):
            raise _full(f"while sending {where}", layout, dev) from exc
        if isinstance(exc, DeviceError) and not isinstance(
            exc,
            DeviceCommandError | PushInterruptedError | PushLockedError | PushLockLostError,
        ):
            lost = PushInterruptedError(
                f"connection lost while sending {where} ({exc.message}); run again to resume"
            )
            lost.exit_code = 75  # as DeviceLostError: try again when the phone is back
            raise lost from exc
        raise
    finally:
        ctrl_c.restore()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return hashed


def _damaged_twice(f: BundleFile, want: str) -> None:
    """Two damaged arrivals: read the host file again to tell which side is bad."""
    if f.local is not None:
        now = sha256_file(f.local)
        if now != want:
            raise BundleError(
                f"{f.local} changed on the host during the push or is damaged: its SHA-256 is "
                f"now {now[:12]}, it was {want[:12]} when the push began; the host file may be "
                "bad",
                "Get the file again (download, fetch or copy) and push again with --verify.",
            )
    raise DeviceCommandError(
        f"{f.remote} arrived damaged on the phone twice (SHA-256 differs); the host file "
        "still hashes as expected, so the link or the phone's storage corrupts it, or the "
        "host file may be bad (a disk that returns different bytes on each read)",
        "Check the cable or connection and run again with --verify (it re-hashes the host "
        "side too).",
    )


class _CtrlC(PushProgress):
    """Ctrl-C that works inside adb-shell's push.

    adb-shell calls the progress callback inside a bare ``except: pass``, so a
    KeyboardInterrupt raised there is swallowed and the push would run to the end of a
    multi-GB file. While sending, SIGINT sets a flag; the next progress call closes the
    connection, the push fails at once, and the error is reported as the interruption.
    """

    def __init__(self, dev: Any, progress: PushProgress) -> None:
        self.dev = dev
        self.progress = progress
        self.pressed = False
        self._old: Any = None

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._on_sigint)

    def restore(self) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def file_started(self, remote: str, size: int) -> None:
        self.progress.file_started(remote, size)

    def advance(self, nbytes: int) -> None:
        if self.pressed:
            self.dev.close()  # raising here would be swallowed (see the class doc)
            raise KeyboardInterrupt
        self.progress.advance(nbytes)


def _push_one(dev: Any, work: str, f: BundleFile, progress: PushProgress) -> None:
    partial = work + f.remote + PARTIAL_SUFFIX
    progress.file_started(f.remote, f.size)
    if f.local is not None:
        mtime = int(os.stat(f.local).st_mtime)
        dev.push(f.local, partial, mode=f.mode, mtime=mtime, progress=progress.advance)
    else:
        dev.push_bytes(f.data or b"", partial, mode=f.mode)
        progress.advance(f.size)


def _verify_and_place(
    lock: PhoneLock,
    dev: Any,
    layout: PhoneLayout,
    journal_file: str,
    f: BundleFile,
    wanted: Future[BundleManifest],
) -> bool:
    """Hash the .partial on the phone; rename it into place (and note it in the journal)
    when it matches, else delete it. Both under the lock."""
    work = layout.work_dir.rstrip("/") + "/"
    partial = f.remote + PARTIAL_SUFFIX
    got = sha256_on_phone(dev, layout, [partial], f.size)
    entry = wanted.result().files[f.remote]
    if got.get(partial) != entry.sha256:
        lock.run(f"rm -f {quote(work + partial)}", f"removing the damaged {partial}")
        return False
    lock.run(
        f"mv -f {quote(work + partial)} {quote(work + f.remote)}"
        f" && echo {quote(_journal_line(f.remote, entry))} >> {quote(journal_file)}",
        f"renaming {f.remote} into place",
    )
    return True


def detect_soc(device: Device) -> str:
    soc = device.getprop("ro.soc.model").strip()
    if not soc:
        raise ConfigError(
            "the phone does not report its chip (getprop ro.soc.model is empty)",
            "Pass --soc (e.g. SM8750 for Snapdragon 8 Elite).",
        )
    return soc


def prepare_phone(
    device: Device,
    bundle_dir: Path,
    qairt_dir: Path | None,
    work_dir: str = DEFAULT_WORK_DIR,
    soc: str | None = None,
    *,
    tokenizer: Path | None = None,
    model: Any = None,
    verify: bool = False,
    progress: PushProgress | None = None,
    **overrides: Any,
) -> PushReport:
    """Plan the bundle for this phone's chip and push it: the one call demo/bench/tests need.

    ``model``: a ModelSpec or its name (None: the default model). ``overrides``:
    context_size, max_num_tokens, temp, top_k, top_p, seed.
    """
    if qairt_dir is None and os.environ.get("QAIRT_HOME"):
        qairt_dir = Path(os.environ["QAIRT_HOME"])
    soc = soc or detect_soc(device)
    plan = plan_bundle(
        Path(bundle_dir), qairt_dir, soc, tokenizer=tokenizer, model=model, **overrides
    )
    return push_assets(
        device, plan, PhoneLayout(posixpath.normpath(work_dir)), verify=verify, progress=progress
    )
