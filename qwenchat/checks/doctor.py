"""``qwenchat doctor``: is this phone ready to run the model through Genie? Step by step.

It only *checks*, through the ``Device`` interface and the runner, what push-assets put on
the phone and what genie-t2t-run does with a short prompt. Each check says what it saw and,
when it fails, what to do; a warning (``warn``) passes but says what may go wrong later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from qwenchat.assets.integrity import bundle_integrity
from qwenchat.assets.qairt_version import versions_match
from qwenchat.device.base import Device
from qwenchat.device.info import read_device_info
from qwenchat.errors import (
    BundleError,
    DeviceError,
    DeviceUnauthorizedError,
    NoDeviceError,
    QwenchatError,
)
from qwenchat.layout import PhoneLayout
from qwenchat.manifest import BundleManifest
from qwenchat.models.registry import get_model
from qwenchat.models.spec import ModelSpec
from qwenchat.runner import open_engine
from qwenchat.runner.record import QueryRecord
from qwenchat.runner.request import QueryRequest, SamplerSettings, WaitBounds
from qwenchat.shellwords import quote
from qwenchat.soc import soc_name

# Without a bundle the phone needs room for one (~5 GB of context binaries + runtime).
BUNDLE_FREE_MB = 6000
MIN_FREE_MB = 512  # dialog states and profiles, once the bundle is there
GENIE_START_TIMEOUT = 180.0  # a 7B model load takes seconds; a stuck DSP much longer
QAIRT_LIBS = ("libGenie.so", "libQnnHtp.so", "libQnnSystem.so")


# The llm_on_genie tutorial asks 16 GB of device RAM for 7B models at 4096 context.
MIN_RAM_GB_7B = 16


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    advice: str = ""
    warn: bool = False  # passes, but says what may go wrong


@dataclass
class DoctorReport:
    address: str | None = None
    simulated: bool = False
    info: dict | None = None
    checks: list[Check] = field(default_factory=list)
    model: str | None = None  # the model checked for (the phone's, or --model)
    probe: QueryRecord | None = None  # the short genie-t2t-run, kept for --report
    chat_engine: str | None = None  # what `qwenchat run` will use: "session" or "process"
    # Host seconds spent running Genie (the genie-t2t-run probe and genie-app's): doctor's
    # own cost is the rest (make bench holds it to a bound).
    genie_probe_s: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "address": self.address,
            "simulated": self.simulated,
            "info": self.info,
            "model": self.model,
            "chat_engine": self.chat_engine,
            "genie_probe_s": None if self.genie_probe_s is None else round(self.genie_probe_s, 3),
            "checks": [asdict(c) for c in self.checks],
        }


def run_doctor(
    opener: Callable[[], Device],
    work_dir: str,
    *,
    deep: bool = False,
    model: ModelSpec | None = None,
    on_step: Callable[[Check], None] | None = None,
    then: Callable[[Device, DoctorReport], None] | None = None,
) -> DoctorReport:
    """Run every check that can run; a failed connection stops the rest. ``then`` runs with
    the device still open once the checks are done (doctor --report reads more)."""
    report = DoctorReport()

    def add(check: Check) -> Check:
        report.checks.append(check)
        if on_step is not None:
            on_step(check)
        return check

    try:
        device = opener()
    except DeviceUnauthorizedError as exc:
        add(Check("reachable", True, "the phone answers"))
        add(Check("authorized", False, exc.message, exc.hint or ""))
        return report
    except (NoDeviceError, DeviceError) as exc:
        add(Check("reachable", False, exc.message, exc.hint or ""))
        return report
    with device:
        report.address = device.name
        add(Check("reachable", True, f"{device.name} via {device.transport_name}"))
        add(Check("authorized", True, "this computer's key is accepted"))
        try:
            _device_checks(device, work_dir, deep, model, report, add)
            if then is not None:
                then(device, report)
        except QwenchatError as exc:  # the link died mid-way: say so as a failed step
            add(Check("connection", False, exc.message, exc.hint or ""))
    return report


def _device_checks(device, work_dir, deep, wanted, report, add) -> None:  # noqa: ANN001

    layout = PhoneLayout(work_dir)
    info = read_device_info(device, work_dir)
    report.info = info.to_dict()
    report.simulated = info.simulated
    manifest = _read_manifest(device, layout.manifest_path)
    spec = wanted or get_model(manifest.model if manifest is not None else None)
    report.model = spec.name
    label = f"{info.soc or 'unknown SoC'}" + (f" ({info.soc_name})" if info.soc_name else "")
    if info.hexagon_arch:
        add(Check("SoC supported", True, f"{label}, Hexagon {info.hexagon_arch}"))
    else:
        add(
            Check(
                "SoC supported",
                False,
                f"{label}: no Genie context binaries for it",
                "Use a phone with Snapdragon 8 Gen 2, 8 Gen 3 or 8 Elite.",
            )
        )
    add(_published_check(spec, info.soc))
    add(_memory_check(info.ram_mb))

    probe = f"{layout.tmp_dir}/.doctor-write-test"
    result = device.shell(
        f"mkdir -p {quote(layout.tmp_dir)} && echo ok > {quote(probe)} && rm {quote(probe)}"
    )
    writable = result.ok
    add(
        Check(
            "work dir writable",
            writable,
            work_dir if writable else (result.error_text or result.text).strip()[:200],
            "" if writable else "Choose another --device-dir (it must be under /data/local/tmp).",
        )
    )

    need = MIN_FREE_MB if manifest else BUNDLE_FREE_MB
    if info.free_mb is None:
        add(Check("free space", False, "df gave no answer", "Check the work dir exists."))
    else:
        enough = info.free_mb >= need
        add(
            Check(
                "free space",
                enough,
                f"{info.free_mb} MB free (needs {need} MB)",
                "" if enough else "Free space on the phone (`qwenchat clean --bundle`).",
            )
        )

    if manifest is None:
        add(
            Check(
                "bundle present",
                False,
                f"no {layout.manifest_path}",
                "Push the model with `qwenchat push-assets`.",
            )
        )
    else:
        add(_model_check(manifest, wanted))
        add(_bundle_check(device, layout, deep))
        add(_qairt_version_check(manifest))

    arch = info.hexagon_arch
    add(_qairt_check(device, layout, arch))
    probe_started = time.monotonic()
    add(_genie_check(device, layout, report))
    add(_engine_check(device, layout, report))
    report.genie_probe_s = time.monotonic() - probe_started


def _published(spec: ModelSpec) -> tuple[tuple[str, ...], str]:
    """Chips with published binaries and who says so: AI Hub's release index when it can be
    read (a short timeout; a cached copy counts), else qwenchat's table."""
    try:
        from qwenchat.hub.published import published_socs

        answer = published_socs(spec, online=True, timeout=5.0)
        return answer.socs, answer.source
    except (ImportError, QwenchatError):  # the hub extra is not installed, or it failed
        return tuple(spec.hub.published_socs), "qwenchat's table"


def _published_check(spec: ModelSpec, soc: str) -> Check:
    """Whether Qualcomm publishes binaries of the model for this chip."""
    name = f"{spec.display_name} binaries for this chip"
    published, source = _published(spec)
    where = ", ".join(f"{s} ({soc_name(s)})" for s in published) or "no chip"
    if soc.strip().upper() in published:
        return Check(name, True, f"published for {where} ({source})")
    return Check(
        name,
        True,
        f"{soc or 'this SoC'} has none published (only {where}, says {source}); 5005 is what "
        "a binary for another chip gives",
        f"Export them for {soc or 'this SoC'} with your own AI Hub job "
        "(`qwenchat fetch --hub-job JOB_ID`), or use a phone with a listed chip.",
        warn=True,
    )


def _memory_check(ram_mb: int | None) -> Check:
    if ram_mb is None:
        return Check("memory", True, "MemTotal not readable", warn=True)
    gb = ram_mb / 1024
    if gb + 0.5 >= MIN_RAM_GB_7B:  # MemTotal is a little under the marketed size
        return Check("memory", True, f"{gb:.1f} GB (MemTotal)")
    return Check(
        "memory",
        True,
        f"{gb:.1f} GB (MemTotal): below the {MIN_RAM_GB_7B} GB the llm_on_genie tutorial asks "
        "for 7B models at 4096 context",
        "Expect load failures or the phone killing other apps; a smaller context or model fits better.",
        warn=True,
    )


def _model_check(manifest: BundleManifest, wanted: ModelSpec | None) -> Check:
    held = get_model(manifest.model)
    if wanted is not None and wanted.name != held.name:
        return Check(
            "model",
            False,
            f"the phone holds {held.display_name}, not {wanted.display_name}",
            f"Push it: `qwenchat push-assets --model {wanted.name}`.",
        )
    return Check("model", True, held.display_name)


def _read_manifest(device: Device, path: str) -> BundleManifest | None:

    if device.stat(path) is None:
        return None
    try:
        return BundleManifest.from_json(device.pull_bytes(path))
    except QwenchatError:
        return None


def _bundle_check(device: Device, layout: PhoneLayout, deep: bool) -> Check:
    """The bundle is one whole push (assets.integrity): no push at work, no mix of two
    bundles, every file there with its size (``--deep``: its SHA-256)."""
    verdict = bundle_integrity(device, layout, deep=deep)
    if not verdict.ok:
        return Check("bundle intact", False, verdict.message, verdict.hint)
    manifest = verdict.manifest
    assert manifest is not None  # an intact bundle has its manifest
    what = f"{len(manifest.files)} files, {manifest.total_size / 1e9:.2f} GB"
    return Check("bundle intact", True, what + (", SHA-256 verified" if deep else ", sizes match"))


def _qairt_version_check(manifest: BundleManifest) -> Check:
    """The QAIRT pushed against the one the binaries were compiled with (both from the
    phone's manifest, as push-assets read them); the tutorial and ChatApp need them equal."""
    pushed, built = manifest.qairt_version, manifest.binaries_qairt_version
    if pushed and built:
        if versions_match(pushed, built):
            return Check("QAIRT version", True, f"QAIRT {pushed}, as the binaries were compiled with")
        return Check(
            "QAIRT version",
            True,
            f"the phone runs QAIRT {pushed}, the context binaries were compiled with QAIRT {built}",
            f"Push the QAIRT {built} runtime (`qwenchat push-assets --qairt DIR`); a mismatch "
            "gives QNN errors 5000/5005 at load.",
            warn=True,
        )
    known = pushed or built
    detail = (
        f"QAIRT {pushed} pushed; the binaries' QAIRT is unknown (not fetched with qwenchat)"
        if pushed else f"binaries compiled with QAIRT {built}; the pushed runtime's version is unknown"
        if built else "neither version is known"
    )
    return Check("QAIRT version", True, detail, "" if known else "Push with a QAIRT SDK that has sdk.yaml.", warn=True)


def _qairt_check(device: Device, layout: PhoneLayout, arch: str | None) -> Check:
    wanted = [f"{layout.lib_dir}/{lib}" for lib in QAIRT_LIBS]
    if arch:
        wanted.append(f"{layout.skel_dir}/libQnnHtp{arch.upper()}Skel.so")
    missing = [path.rsplit("/", 1)[1] for path in wanted if device.stat(path) is None]
    if missing:
        return Check(
            "QAIRT runtime",
            False,
            "missing " + ", ".join(missing),
            "Push the runtime with `qwenchat push-assets` (it copies the QAIRT libraries for this arch).",
        )
    return Check("QAIRT runtime", True, f"{len(wanted)} libraries for {arch or 'this phone'}")


PROBE_PROMPT = "Hello"
PROBE_TOKENS = 4  # enough to see tokens stream; the model load dominates anyway


def genie_probe(device: Device, layout: PhoneLayout) -> QueryRecord:
    """One short query through the runner, as chat would run it (its record holds the whole
    stdout, stderr, profile and exit code)."""

    engine = open_engine(device, layout)
    request = QueryRequest(
        PROBE_PROMPT,
        SamplerSettings(max_tokens=PROBE_TOKENS),
        bounds=WaitBounds(first_token=GENIE_START_TIMEOUT, stall=GENIE_START_TIMEOUT),
    )
    return engine.query(request)


def _genie_check(device: Device, layout: PhoneLayout, report: DoctorReport) -> Check:
    """Run genie-t2t-run on a one-word prompt for a few tokens."""

    name = "genie-t2t-run runs"
    if device.stat(layout.genie_binary) is None:
        return Check(name, False, f"no {layout.genie_binary}", "Push the runtime with `qwenchat push-assets`.")
    try:
        record = genie_probe(device, layout)
    except BundleError as exc:
        return Check(name, False, exc.message, exc.hint or "")
    report.probe = record
    version = record.libgenie_version
    version_text = f"libGenie {version}" if version else "no libGenie version printed"
    if record.ok:
        if record.profile is not None and record.profile.init_ms is not None:
            version_text += f", model load {record.profile.init_ms / 1000:.1f} s (genie)"
        return Check(name, True, version_text)
    if record.failure is not None:
        return Check(name, False, record.failure.message[:200], record.failure.hint)
    return Check(
        name,
        False,
        f"{version_text}; {(record.message or record.outcome.value)[:200]}",
        "Run `qwenchat run --debug` to see Genie's full output.",
    )


def _engine_check(device: Device, layout: PhoneLayout, report: DoctorReport) -> Check:
    """Which engine chat will use: genie-app probed through its FIFO (a `version` round
    trip, no model load), as `qwenchat run --engine auto` does before the first turn."""
    from qwenchat.runner.session import SessionEngine, SessionUnavailable

    name = "chat engine"
    try:
        engine = open_engine(device, layout, kind="session")
    except SessionUnavailable as exc:
        report.chat_engine = "process"
        return Check(
            name,
            True,
            f"one genie-t2t-run per turn (the model loads every turn): {exc.message}",
            exc.hint or "",
            warn=True,
        )
    except BundleError as exc:
        report.chat_engine = None
        return Check(name, False, exc.message, exc.hint or "")
    assert isinstance(engine, SessionEngine)  # kind="session"
    try:
        what = f"genie-app {engine.build} build" + (
            f", libGenie {engine.libgenie_version}" if engine.libgenie_version else ""
        )
        report.chat_engine = "session"
        return Check(
            name,
            True,
            f"session: the model stays loaded for a whole chat ({what} answered through its FIFO)",
        )
    finally:
        engine.close()


def report_json(report: DoctorReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
