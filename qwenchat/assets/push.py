"""Putting a ``BundlePlan`` on the phone: only what differs, each file verified, resumable.

Protocol, so an interrupted push never leaves a file that looks complete:

1. One shell call reads the phone's manifest, the size of every planned file (and of any
   ``.partial`` left over), free space and the model name (``phone_state``).
2. A file is skipped when the manifest has its SHA-256 and size and ``stat`` agrees. A file
   the manifest does not vouch for but whose size matches (an interrupted earlier run) is
   hashed on the phone and skipped when it matches: whole-file resume.
3. Free space is checked against the peak the push will need.
4. If files the manifest vouches for are about to be replaced, the manifest is rewritten
   without them first: it never claims a file that is not what it says.
5. Each file goes to ``<name>.partial``, is hashed on the phone (``sha256sum``) and is
   renamed into place only when the hash matches. Through Google's adb server that check
   overlaps the sending of the next file; adb-shell (direct) cannot run a shell while a
   sync push is in flight on its connection, so there it follows each file.
6. The full manifest is written last (itself via a ``.partial`` + ``mv``).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwenchat.assets.bundle import BundleFile, BundlePlan, plan_bundle
from qwenchat.assets.phone_state import (
    PARTIAL_SUFFIX,
    PhoneState,
    read_phone_state,
    sha256_on_phone,
)
from qwenchat.device.base import Device
from qwenchat.errors import ConfigError, DeviceCommandError, DeviceError, DeviceStorageError
from qwenchat.layout import DEFAULT_WORK_DIR, PhoneLayout
from qwenchat.manifest import BundleManifest, FileEntry, HashCache
from qwenchat.shellwords import quote

RETRIES = 1  # a file whose hash differs on the phone is sent once more, then we give up


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
    host_files_hashed: int = 0  # files read and hashed on the host in this run
    host_cache_hits: int = 0  # files whose hash came from the cache (not read)
    phone_files_hashed: int = 0  # files hashed by sha256sum on the phone in this run
    shell_calls: int = 0

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
        return f"verified: all {self.files_sent + self.files_skipped} file(s) re-hashed on the phone{fixed}"

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
    """Counts shell calls (the report shows the unchanged case costs one or two)."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.shell_calls = 0

    def shell(self, command: str, *, timeout: float | None = 60.0):  # noqa: ANN201
        self.shell_calls += 1
        return self.device.shell(command, timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.device, name)


def host_manifest(plan: BundlePlan, cache: HashCache) -> BundleManifest:
    """Size + SHA-256 of every planned file; files on disk come from the hash cache."""
    on_disk = [f.local for f in plan.files if f.local is not None]
    shas = cache.sha256_many(on_disk)
    files: dict[str, FileEntry] = {}
    for f in plan.files:
        if f.local is not None:
            files[f.remote] = FileEntry(f.size, shas[f.local])
        else:
            files[f.remote] = FileEntry(f.size, hashlib.sha256(f.data or b"").hexdigest())
    return BundleManifest(files=files)


def _check(device: Any, command: str, what: str, timeout: float = 60.0) -> None:
    result = device.shell(command, timeout=timeout)
    if not result.ok:
        detail = (result.error_text or result.text).strip().splitlines()
        raise DeviceCommandError(
            f"{what} failed on the phone: {detail[-1] if detail else f'exit {result.exit_code}'}"
        )


def _peak_need(order: list[BundleFile], state: PhoneState) -> int:
    """Most extra bytes the phone holds at once: each file is replaced one at a time."""
    delta = peak = 0
    for f in order:
        old = state.sizes.get(f.remote, 0)
        peak = max(peak, delta + f.size)
        delta += f.size - old
    return max(peak, delta)


def push_assets(
    device: Device,
    plan: BundlePlan,
    layout: PhoneLayout,
    *,
    verify: bool = False,
    progress: PushProgress | None = None,
    cache: HashCache | None = None,
    overlap: bool | None = None,
) -> PushReport:
    """Make the phone hold exactly ``plan`` under ``layout.work_dir``; see the module doc.

    ``overlap``: hash file N on the phone while file N+1 is being sent. Default: where the
    device can carry a shell stream during a push (``Device.concurrent_streams``); otherwise
    each file is verified right after sending it.
    """
    if overlap is None:
        overlap = device.concurrent_streams
    started = time.perf_counter()
    progress = progress or PushProgress()
    dev = _CountingDevice(device)
    own_cache = cache is None
    cache = cache or HashCache()
    # Host hashing runs while the phone is asked what it holds and, on a first push, while
    # the first files are already on the wire: their hashes are only needed to verify them.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwenchat-host-hash")
    try:
        wanted_future = hasher.submit(host_manifest, plan, cache)
        progress.status("reading the phone's work dir")
        state = read_phone_state(dev, layout, [f.remote for f in plan.files])

        by_remote = {f.remote: f for f in plan.files}
        phone_known = state.manifest.files if state.manifest else {}
        to_send: list[str] = []
        to_hash: list[str] = []  # present with the right size: the phone's hash decides
        wanted: BundleManifest | None = None
        for f in plan.files:
            remote_size = state.sizes.get(f.remote)
            if remote_size != f.size:
                to_send.append(f.remote)  # no hash needed to know it must go
                continue
            if wanted is None:
                progress.status("hashing the bundle on the host (cached after the first time)")
                wanted = wanted_future.result()
            want = wanted.files[f.remote]
            have = phone_known.get(f.remote)
            if verify or have is None:
                to_hash.append(f.remote)  # unknown (e.g. an interrupted run): hash decides
            elif have != want:
                to_send.append(f.remote)  # the manifest vouches it is an older version
        phone_hashed = 0
        repaired: list[str] = []
        if to_hash:
            progress.status(f"checking {len(to_hash)} file(s) on the phone with SHA-256")
            got = sha256_on_phone(dev, layout, to_hash, sum(by_remote[r].size for r in to_hash))
            phone_hashed += len(to_hash)
            assert wanted is not None  # to_hash is only filled after the hashes are known
            for r in to_hash:
                if got.get(r) != wanted.files[r].sha256:
                    to_send.append(r)
                    if verify and phone_known.get(r) == wanted.files[r]:
                        repaired.append(r)  # the manifest vouched for it, yet it differs
        order = [f for f in plan.files if f.remote in set(to_send)]
        # Files an older bundle left (e.g. ctx-bins of another export): GBs of dead weight.
        stale = [r for r in phone_known if r not in by_remote and _safe_relative(r)]

        send_started = time.perf_counter()
        if order or state.manifest is None or _manifest_stale(state.manifest, wanted_future):
            _check_space(order, state, layout, stale)
            phone_hashed += _send(
                dev, layout, order, wanted_future, state, progress, overlap, stale
            )
            _write_manifest(dev, layout, wanted_future.result())
        send_seconds = time.perf_counter() - send_started
        progress.end()
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
            repaired=repaired,
            host_files_hashed=cache.hashed,
            host_cache_hits=cache.hits,
            phone_files_hashed=phone_hashed,
            shell_calls=dev.shell_calls,
        )
    finally:
        hasher.shutdown(wait=True, cancel_futures=True)
        if own_cache:
            cache.close()


def _manifest_stale(have: BundleManifest, want: Future[BundleManifest]) -> bool:
    return have.files != want.result().files


def _safe_relative(name: str) -> bool:
    """A manifest name we may delete: plainly inside the work dir (the phone's manifest is
    data from the phone, not trusted to name paths elsewhere)."""
    norm = posixpath.normpath(name)
    return norm == name and not name.startswith(("/", "../")) and name not in (".", "..")


def _check_space(
    order: list[BundleFile], state: PhoneState, layout: PhoneLayout, stale: list[str]
) -> None:
    if state.free_bytes is None:
        return  # df unreadable: the push itself will fail cleanly on a full disk
    need = _peak_need(order, state)
    free = state.free_bytes + sum(state.partial_sizes.values())  # leftovers are removed first
    if state.manifest is not None:
        free += sum(state.manifest.files[r].size for r in stale)
    if need > free:
        raise DeviceStorageError(
            f"needs {format_bytes(need)}, phone has {format_bytes(free)} free in {layout.work_dir}"
        )


def _send(
    dev: Any,
    layout: PhoneLayout,
    order: list[BundleFile],
    wanted: Future[BundleManifest],
    state: PhoneState,
    progress: PushProgress,
    overlap: bool,
    stale: list[str],
) -> int:
    """Send ``order``; returns how many files were hashed on the phone."""
    work = layout.work_dir.rstrip("/") + "/"
    replacing = [f.remote for f in order if state.manifest and f.remote in state.manifest.files]
    drop = set(replacing) | set(stale)
    cleanup = [quote(work + r + PARTIAL_SUFFIX) for r in state.partial_sizes]
    cleanup += [quote(work + r) for r in stale]
    if drop and state.manifest is not None:
        # Keep the manifest truthful while files it vouches for are replaced or removed.
        kept = {k: v for k, v in state.manifest.files.items() if k not in drop}
        _put_manifest(dev, layout, BundleManifest(files=kept))
    if cleanup:
        _check(dev, f"rm -f {' '.join(cleanup)}", "removing leftovers of an earlier push")
    if not order:
        return 0

    progress.begin(len(order), sum(f.size for f in order))
    hashed = 0
    pool = ThreadPoolExecutor(max_workers=1) if overlap else None
    pending: list[tuple[BundleFile, Future[bool] | bool]] = []
    current: BundleFile | None = None
    ctrl_c = _CtrlC(dev, progress)
    try:
        ctrl_c.install()
        for f in order:
            current = f
            _push_one(dev, work, f, ctrl_c)
            if pool is not None:
                pending.append((f, pool.submit(_verify_and_place, dev, work, f, wanted)))
            else:
                pending.append((f, _verify_and_place(dev, work, f, wanted)))
            hashed += 1
            progress.file_finished(f.remote)
        current = None
        for f, outcome in pending:
            ok = outcome.result() if isinstance(outcome, Future) else outcome
            for _ in range(RETRIES):
                if ok:
                    break
                progress.status(f"{f.remote} arrived damaged: sending it again")
                _push_one(dev, work, f, ctrl_c)
                ok = _verify_and_place(dev, work, f, wanted)
                hashed += 1
            if not ok:
                raise DeviceCommandError(
                    f"{f.remote} arrived damaged on the phone twice (SHA-256 differs)",
                    "Check the cable/connection and run again; `--verify` re-checks everything.",
                )
    except (KeyboardInterrupt, Exception) as exc:
        where = current.remote if current else "the bundle"
        if ctrl_c.pressed or isinstance(exc, KeyboardInterrupt):
            stopped = PushInterruptedError(
                f"interrupted while sending {where}; run again to resume"
            )
            stopped.exit_code = 130  # the shell's code for Ctrl-C
            raise stopped from None
        if isinstance(exc, DeviceError) and not isinstance(
            exc, DeviceCommandError | PushInterruptedError
        ):
            raise PushInterruptedError(
                f"connection lost while sending {where} ({exc.message}); run again to resume"
            ) from exc
        raise
    finally:
        ctrl_c.restore()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return hashed


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


def _verify_and_place(dev: Any, work: str, f: BundleFile, wanted: Future[BundleManifest]) -> bool:
    """Hash the .partial on the phone; rename it into place when it matches, else delete it."""
    partial = f.remote + PARTIAL_SUFFIX
    got = sha256_on_phone(dev, PhoneLayout(work.rstrip("/")), [partial], f.size)
    if got.get(partial) != wanted.result().files[f.remote].sha256:
        dev.shell(f"rm -f {quote(work + partial)}")
        return False
    _check(dev, f"mv -f {quote(work + partial)} {quote(work + f.remote)}", f"renaming {f.remote}")
    return True


def _put_manifest(dev: Any, layout: PhoneLayout, manifest: BundleManifest) -> None:
    tmp = layout.manifest_path + PARTIAL_SUFFIX
    dev.push_bytes(manifest.to_json().encode(), tmp)
    _check(dev, f"mv -f {quote(tmp)} {quote(layout.manifest_path)}", "writing the manifest")


def _write_manifest(dev: Any, layout: PhoneLayout, manifest: BundleManifest) -> None:
    _put_manifest(dev, layout, manifest)


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
    verify: bool = False,
    progress: PushProgress | None = None,
    **overrides: Any,
) -> PushReport:
    """Plan the bundle for this phone's chip and push it: the one call demo/bench/tests need.

    ``overrides``: context_size, max_num_tokens, temp, top_k, top_p, seed.
    """

    if qairt_dir is None and os.environ.get("QAIRT_HOME"):
        qairt_dir = Path(os.environ["QAIRT_HOME"])
    soc = soc or detect_soc(device)
    plan = plan_bundle(Path(bundle_dir), qairt_dir, soc, tokenizer=tokenizer, **overrides)
    return push_assets(
        device, plan, PhoneLayout(posixpath.normpath(work_dir)), verify=verify, progress=progress
    )
