"""The session engine: one genie-app on the phone keeps one Genie dialog alive for a chat, so
the model is loaded once, not once per turn (issue 19).

Protocol (genie-app's commands: ``qwenchat/genie/genie_app.md``; phone side: ``session_phone.py``)::

    launch   exec genie-app -s FIFO 3<>FIFO          (pid printed first, pid file written)
    probe    version | # qwenchat-probe N            (answered: genie-app reads the FIFO)
    load     profile create P | dialog config create C FILE | dialog config bind profile C P
             | dialog create D C | # qwenchat-load N (host clock: the model load)
    turn n   [dialog reset D] | dialog query D PROMPT_n | profile save P PROFILE_n
             | # qwenchat-turn N

A newer build also takes the dialog's sampler once (``dialog getSampler D S``) and a query
whose sampler settings differ from the dialog's applies them first (``sampler config create
C SAMPLER_n | sampler applyConfig S C | sampler config free C``: GenieSampler_applyConfig),
so changing temp/top-k/top-p/seed keeps the model loaded and the KV cache; an older build
makes a new dialog (a model load) for it.

Every line is followed by a line of 4096 spaces: genie-app's reader (libc++ filebuf over
bionic fread) hands a line to the script only once 4 KB more arrived. A turn's reply is over
when the echo of ``profile save P PROFILE_n`` shows (a path made for this turn: no reply
produces it by chance); the turn is over at the comment's echo, and PROFILE_n then holds
Genie's profile with every query so far (its last GenieDialog_query is this turn's).

The load is paid once per genie-app: its figures (Genie's init-time, the host clock) go on
the record of the query that paid it, and only there. A stop (Ctrl-C, a bound) kills genie-app;
the next query starts a new one and the chat rebuilds the conversation from its transcript.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qwenchat.device.space import full_hint
from qwenchat.errors import (
    BundleError,
    DeviceError,
    DeviceTimeoutError,
    PhoneFullError,
    QwenchatError,
    UsageError,
)
from qwenchat.genie import stream as ev
from qwenchat.genie.command import ANDROID_ADSP_DIRS
from qwenchat.genie.failures import diagnose, phone_full
from qwenchat.genie.profile import parse_profile
from qwenchat.runner.engine import Engine, TextCallback
from qwenchat.runner.phone_bundle import PhoneBundle
from qwenchat.runner.process import ProcessEngine
from qwenchat.runner.record import Outcome, QueryRecord, TimedEvent
from qwenchat.runner.request import QueryRequest, SamplerSettings, WaitBounds
from qwenchat.runner.session_files import SessionFiles, owner_tag, script_word
from qwenchat.runner.session_phone import (
    FifoWriter,
    genie_app_path,
    launch_command,
    remove_files,
    script_line,
    stop_session_process,
    sweep_orphans,
)
from qwenchat.runner.session_stream import Cutter, TurnReader, VersionReply
from qwenchat.shellwords import quote

PROBE_S = 20.0  # genie-app starting and answering `version`: no model is loaded yet
CLOSE_S = 3.0  # `exit` to the end of the stream, before genie-app is killed
ABORT_S = 1.0  # a `dialog abort` that has not ended the reply by then: genie-app is killed
DIALOG, CONFIG, PROFILE = "qwenchat", "qwenchat-config", "qwenchat-profile"
SAMPLER, SAMPLER_CONFIG = "qwenchat-sampler", "qwenchat-sampler-config"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PID_LINE = re.compile(rb"qwenchat-session-pid: (\d+)\r?\n")
_PID_END = b"\n"  # the launch line's pid is the first line genie-app's stream carries
# Sessions this process runs now: a sweep of our own owner tag leaves exactly these.
_LIVE_IDS: set[str] = set()


class SessionUnavailable(QwenchatError):
    """genie-app cannot carry a session on this phone (missing, or it did not answer)."""

    # What genie-app said before it ended, when it did (the diagnosis needs both streams).
    stdout: str = ""
    stderr: str = ""


@dataclass
class LoadFigures:
    """The model load a session paid (once per genie-app)."""

    host_s: float  # host clock: `dialog create` written → its end seen
    genie_init_us: int | None = None  # Genie's profile: GenieDialog_create init-time


@dataclass
class _Live:
    """One running genie-app and what the host knows of it."""

    files: SessionFiles
    stream: Any  # ShellStream
    chunks: Iterator[bytes]
    channel: contextlib.ExitStack
    pid: int | None = None
    writer: FifoWriter | None = None  # opened once the FIFO exists
    sender: Any = None  # FileSender: prompt and config files on one kept sync stream
    version: str | None = None  # libGenie version (`version`, newer builds)
    build: str = "old"  # "new": answers `version`; "old": does not
    pending: bytes = b""  # stdout read past the last marker
    stderr_seen: int = 0  # bytes of stderr already given to a record
    config: str | None = None  # the genie_config text the dialog was created with
    loaded: bool = False
    max_tokens: int | None = None  # set with setMaxNumTokens (newer builds)
    # The sampler settings applied to the dialog's sampler (newer builds; the default: the
    # dialog config's own).
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    load: LoadFigures | None = None
    queries: int = 0
    dirty: bool = False  # the dialog's KV cache holds something
    dead: bool = False
    ended: bool = False  # its stdout ended: the process is gone (exec'd: the stream is it)
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    marks: int = 0

    def mark(self, kind: str) -> str:
        self.marks += 1
        return f"# qwenchat-{kind} {self.nonce}-{self.marks}"


class SessionEngine(Engine):
    name = "session"
    keeps_model_loaded = True

    def __init__(self, bundle: PhoneBundle) -> None:
        super().__init__(bundle)
        self._lock = threading.Lock()
        # One FIFO write at a time on the main connection (a cancel writes from its thread).
        self._write_lock = threading.Lock()
        self._cancelled = threading.Event()
        self._live: _Live | None = None
        self._async_query = False  # the running query is in an async block (abort works)
        self._abort_requested = False
        self._abort_sent_at: float | None = None  # when the `dialog abort` line was written
        self._owner: str | None = None  # the chat dialog the live KV cache belongs to
        self._valid = False  # that cache holds the whole conversation (last reply finished)
        self.owner_tag = owner_tag()
        self.loads: list[LoadFigures] = []  # every load paid by this engine, in order
        # Files of one-shot per-query runs (the doctor probe) are the process engine's.
        self._tmp_sweeper = ProcessEngine(bundle)

    # ----- lifecycle
    @property
    def pid(self) -> int | None:
        return None if self._live is None else self._live.pid

    @property
    def build(self) -> str | None:
        return None if self._live is None else self._live.build

    @property
    def sampler_per_query(self) -> bool:
        """A query's sampler settings apply to the live dialog (newer genie-app): changing
        them keeps the model loaded and the conversation's KV cache."""
        return self.build == "new"

    @property
    def holds_model(self) -> bool:
        return self._live is not None

    @property
    def can_abort(self) -> bool:
        """A newer genie-app runs the query in an async block: `dialog abort` reaches it."""
        return self.build == "new"

    @property
    def libgenie_version(self) -> str | None:
        return None if self._live is None else self._live.version

    def sweep_stale(self) -> None:
        """End genie-apps left by a qwenchat of this host that was killed, and old files."""
        sweep_orphans(
            self.device, self.layout.tmp_dir, own_tag=self.owner_tag, keep=frozenset(_LIVE_IDS)
        )
        self._tmp_sweeper.sweep_stale()

    def start(self) -> None:
        """Launch genie-app and prove it answers (SessionUnavailable if not)."""
        if self._live is not None and not self._live.dead:
            return
        self._live = None
        binary = genie_app_path(self.layout)
        if self.device.stat(binary) is None:
            raise SessionUnavailable(
                f"no genie-app on the phone ({binary})",
                hint="Push a QAIRT runtime that has bin/aarch64-android/genie-app "
                "(`qwenchat push-assets`), or use --engine process.",
            )
        if not self.device.has_shell_v2:
            raise SessionUnavailable(
                "the phone's adbd has no shell protocol v2 (Android 7 and later have it): a "
                "session needs a command's stdin and a stream it can read without holding bytes",
                hint="Use --engine process.",
            )
        files = SessionFiles.new(self.layout.tmp_dir)
        try:
            for path in (files.fifo, files.config, files.prompt(1), files.profile(1)):
                script_word(path)
        except UsageError as exc:
            raise SessionUnavailable(exc.message, hint=exc.hint) from exc
        adsp = ";".join((self.layout.skel_dir, *ANDROID_ADSP_DIRS))
        command = launch_command(self.layout, files, self.owner_tag, adsp)
        channel = contextlib.ExitStack()
        try:
            # Its own connection where the transport has one: the session's stream stays
            # open for the whole chat while prompts are pushed on the main one.
            dev = channel.enter_context(self.device.side_channel())
            stream = dev.stream_shell(command, first_byte_timeout=PROBE_S, idle_timeout=PROBE_S)
        except BaseException:
            channel.close()
            raise
        live = _Live(files, stream, iter(stream), channel)
        self._live = live
        _LIVE_IDS.add(files.id)
        try:
            self._probe(live)
        except BaseException as exc:
            self._kill(live)
            if isinstance(exc, QwenchatError) and not isinstance(exc, SessionUnavailable):
                raise SessionUnavailable(
                    f"genie-app did not answer on the phone: {exc.message}",
                    hint="Use --engine process; `qwenchat doctor` shows what the phone says.",
                ) from exc
            raise

    def _probe(self, live: _Live) -> None:
        # The launch line prints the pid once the FIFO and the pid file exist: only then
        # may a line be written (a write before would create a plain file, or fail).
        head = self._read_until(live, _PID_END, PROBE_S)
        if (m := _PID_LINE.search(head + _PID_END)) is not None:
            live.pid = int(m.group(1))
        live.writer = FifoWriter(self.device, live.files.fifo)
        live.sender = self.device.file_sender()
        mark = live.mark("probe")
        self._write(live, ["version", mark])
        out = self._read_until(live, mark.encode() + b"\n", PROBE_S)
        reply = VersionReply()
        reply.feed(out)
        if reply.version is not None:
            live.version, live.build = reply.version, "new"
        # An older build's "Unknown command: version." is the probe's, not a query's.
        self._stderr(live)
        if live.pid is None:
            raise SessionUnavailable("genie-app started without printing its pid")

    def close(self) -> None:
        """End genie-app (`exit`, then a kill if it lingers) and remove its files."""
        live, self._live = self._live, None
        self._owner, self._valid = None, False
        if live is None:
            return
        try:
            if not live.dead:
                with contextlib.suppress(QwenchatError):
                    self._write(live, ["exit"])
                    self._drain(live, CLOSE_S)
        finally:
            self._kill(live)

    def _write(self, live: _Live, lines: list[str]) -> None:
        assert live.writer is not None, "a line written before the probe opened the writer"
        live.writer.write(lines)

    def _drain(self, live: _Live, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with contextlib.suppress(QwenchatError, StopIteration):
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                live.stream.set_read_timeout(left)
                next(live.chunks)

    def _kill(self, live: _Live) -> None:
        live.dead = True
        _LIVE_IDS.discard(live.files.id)
        try:
            if live.pid is not None and not live.ended:
                stop_session_process(self.device, live.pid, live.files.fifo)
            remove_files(self.device, live.files)
        except QwenchatError:
            pass  # a vanished phone: the next run's sweep ends it
        finally:
            for kept in (live.writer, live.sender):
                if kept is not None:
                    with contextlib.suppress(Exception):
                        kept.close()
            with contextlib.suppress(Exception):
                live.stream.close()
            with contextlib.suppress(Exception):
                live.channel.close()

    # ----- dialog bookkeeping
    def has_dialog(self, dialog: str) -> bool:
        live = self._live
        return live is not None and not live.dead and self._valid and self._owner == dialog

    def forget(self, dialog: str) -> None:
        if self._owner == dialog:
            self._owner, self._valid = None, False

    def render_config(self, settings: SamplerSettings) -> str:
        """The dialog's genie_config.json text: the bundle's with the sampler settings in.
        Paths stay relative (genie-app runs in the bundle dir, as genie-t2t-run does)."""
        cfg = self.bundle.config
        if not settings.is_default:
            cfg = cfg.with_overrides(
                max_num_tokens=settings.max_tokens,
                temp=settings.temp,
                top_k=settings.top_k,
                top_p=settings.top_p,
                seed=settings.seed,
            )
        return json.dumps(cfg.to_json_dict(), indent=2, ensure_ascii=False) + "\n"

    # ----- reading the stream
    def _next(self, live: _Live, timeout: float | None) -> bytes | None:
        """The next stdout chunk (None: genie-app's output ended); DeviceTimeoutError when the
        bound runs out (the stream is then unusable: the caller ends the session)."""
        if live.pending:
            data, live.pending = live.pending, b""
            return data
        live.stream.set_read_timeout(timeout)
        try:
            return next(live.chunks)
        except StopIteration:
            live.dead = live.ended = True
            return None
        except DeviceTimeoutError:
            live.dead = True
            raise

    def _read_until(self, live: _Live, marker: bytes, timeout: float | None) -> bytes:
        """Everything before ``marker``; the rest stays pending. Raises SessionUnavailable
        when the output ends first, DeviceTimeoutError when ``timeout`` runs out."""
        buf = b""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            at = buf.find(marker)
            if at >= 0:
                live.pending = buf[at + len(marker) :] + live.pending
                return buf[:at]
            left = None if deadline is None else max(0.001, deadline - time.monotonic())
            chunk = self._next(live, left)
            if chunk is None:
                stderr = self._stderr(live)
                ended = SessionUnavailable(
                    "genie-app ended" + (f": {_last_line(stderr)}" if _last_line(stderr) else "")
                    + (f" (exit {live.stream.exit_code})" if live.stream.exit_code else "")
                )
                # What it said before it ended, on both streams: the diagnosis needs them.
                ended.stdout, ended.stderr = _text(buf), stderr
                raise ended
            buf += chunk

    def _stderr(self, live: _Live) -> str:
        raw = live.stream.stderr[live.stderr_seen :]
        live.stderr_seen = len(live.stream.stderr)
        return _ANSI.sub("", raw.decode("utf-8", errors="replace"))

    # ----- one query
    def cancel(self) -> None:
        """Stop the running query. A newer genie-app's query runs in an ``async`` block, so
        ``dialog abort`` reaches it and the model stays loaded; otherwise (an older build, a
        load in progress, an abort that did not take) genie-app is killed and the next query
        starts a new one."""
        self._cancelled.set()
        live = self._live
        if live is None or live.dead:
            return
        if self._async_query:
            with self._lock:
                first = not self._abort_requested
                self._abort_requested = True
            if not first:
                return
            try:
                # The main connection: idle while the reply streams on the session's own, and
                # no new connection (with its handshake) on the way to the prompt.
                with self._write_lock:
                    self._write(live, [script_line("dialog", "abort", DIALOG)])
                self._abort_sent_at = time.monotonic()
                # An abort that has not ended the query by ABORT_S (it came before the query
                # started, or Genie is stuck): kill, as without abort.
                watchdog = threading.Timer(ABORT_S, self._watchdog, args=(live, live.queries))
                watchdog.daemon = True
                watchdog.start()
                return
            except QwenchatError:
                pass
        self._stop(live)

    def _watchdog(self, live: _Live, query: int) -> None:
        if self._async_query and live.queries == query and not live.dead:
            self._stop(live)

    def _stop(self, live: _Live) -> None:
        if live.pid is not None:
            with contextlib.suppress(QwenchatError):
                stop_session_process(self.device, live.pid, live.files.fifo)

    def query(self, request: QueryRequest, on_text: TextCallback | None = None) -> QueryRecord:
        self._cancelled.clear()
        record = QueryRecord(engine=self.name, started_at=time.monotonic())
        follow_up = request.follow_up
        try:
            if follow_up and not self.has_dialog(request.dialog or ""):
                record.outcome = Outcome.FAILED
                record.error = "the live dialog does not hold this conversation"
                return record
            if self._live is None or self._live.dead:
                self._abandon()
                self.start()  # the build decides what the dialog's config holds
            live = self._live
            new_build = live is not None and live.build == "new"
            # A newer build caps a query's tokens (setMaxNumTokens) and applies a new sampler
            # (sampler applyConfig) without a new dialog: once loaded, its config stays. The
            # dialog is still created with the first query's sampler in its config, so the
            # settings a chat starts with never depend on applyConfig alone.
            if new_build and live is not None and live.loaded and live.config is not None:
                config = live.config
            else:
                settings = request.settings.updated(max_tokens=None) if new_build else (
                    request.settings
                )
                config = self.render_config(settings)
            if follow_up and live is not None and live.loaded and live.config != config:
                # Other sampling settings need a new dialog, which holds no conversation:
                # a follow-up cannot go on there (the caller rebuilds from its transcript).
                record.outcome = Outcome.FAILED
                record.error = "the sampling settings changed: the dialog must be rebuilt"
                self._valid = False
                return record
            live = self._ensure(config, record, request.bounds, _sampler_only(request.settings))
            if live is None:
                return record
            self._turn(live, request, record, on_text)
        except DeviceTimeoutError:
            self._timed_out(request, record)
        except PhoneFullError as exc:
            record.outcome = Outcome.FAILED  # the link is fine: not "device lost"
            record.failure = phone_full(
                exc.message, full_hint(self.device, self.layout.work_dir, exc.default_hint)
            )
            self._abandon()
        except DeviceError as exc:
            record.outcome = Outcome.DEVICE_LOST
            record.error = exc.message
            self._abandon()
        except SessionUnavailable as exc:
            record.outcome = Outcome.CUT if self._cancelled.is_set() else Outcome.FAILED
            if record.outcome is Outcome.FAILED:
                record.error = exc.message
                record.failure = diagnose("\n".join([*record.other_lines, record.stderr]))
            self._abandon()
        except BaseException:
            # Ctrl-C outside a chat (bench), SIGTERM/SIGHUP: genie-app must not outlive us.
            self.close()
            raise
        finally:
            if not record.ended_at:
                record.ended_at = time.monotonic()
        if record.outcome is not Outcome.FINISHED:
            self._valid = False
        return record

    def _abandon(self) -> None:
        """The live genie-app cannot be trusted any more: kill it (next query starts anew)."""
        live = self._live
        self._owner, self._valid = None, False
        if live is not None:
            self._live = None
            self._kill(live)

    def _ensure(
        self,
        config: str,
        record: QueryRecord,
        bounds: WaitBounds,
        sampler: SamplerSettings | None = None,
    ) -> _Live | None:
        """A live genie-app with a dialog made from ``config`` (launched and loaded here when
        needed; the load's figures go on ``record``)."""
        live = self._live
        if live is not None and (live.dead or (live.loaded and live.config != config)):
            if live.loaded and live.config != config and not live.dead:
                record.notes.append(
                    "sampling settings changed: the dialog was created again (a model load)"
                )
            self._abandon()
            live = None
        if live is None:
            self.start()
            live = self._live
            assert live is not None
        if not live.loaded:
            self._load(live, config, record, bounds)
            # The sampler the config was rendered with (a newer build: the query's own).
            live.sampler = sampler if sampler is not None and live.build == "new" else (
                SamplerSettings()
            )
        return live

    def _load(self, live: _Live, config: str, record: QueryRecord, bounds: WaitBounds) -> None:
        files = live.files
        live.sender.send(config.encode("utf-8"), files.config)
        mark = live.mark("load")
        lines = [
            script_line("profile", "create", PROFILE),
            script_line("dialog", "config", "create", CONFIG, files.config),
            script_line("dialog", "config", "bind", "profile", CONFIG, PROFILE),
            script_line("dialog", "create", DIALOG, CONFIG),
        ]
        if live.build == "new":
            lines.append(script_line("dialog", "getSampler", DIALOG, SAMPLER))
        lines.append(mark)
        began = time.monotonic()
        self._write(live, lines)
        try:
            said = _text(self._read_until(live, mark.encode() + b"\n", bounds.first_token))
            stderr = self._stderr(live)
        except SessionUnavailable as ended:
            said, stderr = getattr(ended, "stdout", ""), getattr(ended, "stderr", "")
            _keep_lines(record, said)
            record.stderr += stderr
            raise
        # Genie's own log lines (QnnDsp's "[ERROR] ... err 5005") may come on stdout, before
        # genie-app's red line on stderr: the diagnosis reads both, stdout first.
        failure = diagnose(said + "\n" + stderr)
        if failure is not None or "Failed to create" in stderr:
            _keep_lines(record, said)
            record.stderr += stderr
            raise SessionUnavailable(
                failure.message if failure is not None else f"the dialog was not created: {_last_line(stderr)}"
            )
        live.loaded, live.config, live.dirty = True, config, False
        live.load = LoadFigures(host_s=time.monotonic() - began)
        record.load_host_s = live.load.host_s  # this query waited for it, whatever follows
        self.loads.append(live.load)
        record.stderr += stderr

    def _turn(
        self,
        live: _Live,
        request: QueryRequest,
        record: QueryRecord,
        on_text: TextCallback | None,
    ) -> None:
        files = live.files
        live.queries += 1
        n = live.queries
        prompt_file, profile_file = files.prompt(n), files.profile(n)
        live.sender.send(request.prompt.encode("utf-8"), prompt_file)
        lines = []
        if not request.follow_up and live.dirty:
            lines.append(script_line("dialog", "reset", DIALOG))
        sampler = _sampler_only(request.settings)
        if live.build == "new" and sampler != live.sampler:
            lines += self._apply_sampler(live, sampler, n)
        wanted = request.settings.max_tokens
        if live.build == "new" and wanted is not None and wanted != live.max_tokens:
            lines.append(script_line("dialog", "setMaxNumTokens", DIALOG, str(int(wanted))))
            live.max_tokens = wanted
        query = script_line("dialog", "query", DIALOG, prompt_file)
        save = script_line("profile", "save", PROFILE, profile_file)
        mark = live.mark("turn")
        # A newer build runs the query (and the profile save after it) in a thread of its
        # own, so the script reader stays free for a `dialog abort`; `async wait` + the mark
        # end the turn once the reply is over. An older build runs them on the reader.
        use_async = live.build == "new"
        lines += ["async", query, save, "async end"] if use_async else [query, save, mark]
        record.pid = live.pid
        bounds = request.bounds
        with self._lock:
            self._abort_sent_at = None
            self._abort_requested = False
        self._async_query = use_async
        self._write(live, lines)
        record.sent_at = time.monotonic()
        live.dirty = True
        self._owner, self._valid = request.dialog, False
        reader = TurnReader(request.prompt, (b"> " + save.encode() + b"\n"))
        # The abort line's echo comes from the reader thread, in the middle of the reply.
        abort_echo = Cutter(b"> " + script_line("dialog", "abort", DIALOG).encode() + b"\n")
        raw: list[bytes] = []
        deadline = None if bounds.first_token is None else record.sent_at + bounds.first_token
        try:
            while not reader.done:
                if record.first_token_at is not None:
                    timeout = bounds.stall
                elif deadline is not None:
                    timeout = max(0.001, deadline - time.monotonic())
                else:
                    timeout = None
                chunk = self._next(live, timeout)
                at = time.monotonic()
                if chunk is None:  # genie-app ended mid-query (killed by a cancel, or crashed)
                    live.dead = True
                    self._record_events(record, at, reader.finish(), on_text)
                    break
                raw.append(chunk)
                if self._abort_requested:
                    chunk = abort_echo.feed(chunk)
                self._record_events(record, at, reader.feed(chunk), on_text)
        finally:
            self._async_query = False
        record.stdout = b"".join(raw)
        if reader.done:
            live.pending = reader.rest + live.pending
            if use_async:
                with self._write_lock:  # a late cancel's abort may be on its way
                    self._write(live, ["async wait", mark])
            # The turn's end: the profile is written once the mark's echo shows.
            self._read_until(live, mark.encode() + b"\n", bounds.stall)
        record.ended_at = time.monotonic()
        record.stderr += self._stderr(live)
        record.outcome = self._outcome(record, live)
        if record.outcome is Outcome.FINISHED:
            self._read_profile(live, profile_file, record)
            self._valid = request.dialog is not None
        elif not live.dead:
            live.dirty = True
        with contextlib.suppress(QwenchatError):
            if not live.dead:
                self.device.shell(
                    f"rm -f {quote(prompt_file)} {quote(profile_file)}"
                    f" {quote(files.sampler(n))}",
                    timeout=30,
                )

    def _apply_sampler(self, live: _Live, sampler: SamplerSettings, n: int) -> list[str]:
        """Script lines that give the dialog's sampler ``sampler`` (unset keys: the bundle's
        values); its config file is pushed here, like a prompt."""
        cfg = self.bundle.config
        if not sampler.is_default:
            cfg = cfg.with_overrides(
                temp=sampler.temp, top_k=sampler.top_k, top_p=sampler.top_p, seed=sampler.seed
            )
        doc = {"sampler": cfg.to_json_dict()["dialog"].get("sampler", {})}
        path = live.files.sampler(n)
        live.sender.send((json.dumps(doc, indent=2) + "\n").encode("utf-8"), path)
        live.sampler = sampler
        return [
            script_line("sampler", "config", "create", SAMPLER_CONFIG, path),
            script_line("sampler", "applyConfig", SAMPLER, SAMPLER_CONFIG),
            script_line("sampler", "config", "free", SAMPLER_CONFIG),
        ]

    def _record_events(
        self,
        record: QueryRecord,
        at: float,
        events: list[ev.StreamEvent],
        on_text: TextCallback | None,
    ) -> None:
        for event in events:
            record.events.append(TimedEvent(at, event))
            if isinstance(event, ev.ReplyText) and event.text and on_text is not None:
                on_text(event.text)

    def _outcome(self, record: QueryRecord, live: _Live) -> Outcome:
        if self._cancelled.is_set():
            if live.dead:
                self._abandon()  # killed: the next query starts a new genie-app
            else:
                live.dirty = True  # aborted: the model stays loaded, the cache is rebuilt
            return Outcome.CUT
        overflow = ev.is_context_overflow(record.stderr)
        if overflow is not None or record.overflow_message is not None:
            record.failure = diagnose(overflow or record.overflow_message or "")
            return Outcome.CONTEXT_EXCEEDED
        if live.dead:
            record.exit_code = live.stream.exit_code
            record.failure = diagnose(record.stderr)
            if record.failure is None:
                code = live.stream.exit_code
                record.error = "genie-app stopped " + (
                    f"with exit code {code}" if code is not None else "unexpectedly"
                ) + (f": {_last_line(record.stderr)}" if _last_line(record.stderr) else "")
            self._abandon()
            return Outcome.FAILED
        if record.ended and not record.aborted:
            return Outcome.FINISHED
        record.failure = diagnose(record.stderr)
        if record.failure is None:
            record.error = "genie-app: the query failed" + (
                f": {_last_line(record.stderr)}" if _last_line(record.stderr) else ""
            )
        return Outcome.FAILED

    def _read_profile(self, live: _Live, path: str, record: QueryRecord) -> None:
        if self.device.stat(path) is None:
            record.notes.append("genie-app wrote no profile for this query")
            return
        raw = self.device.pull_bytes(path)
        try:
            profile = parse_profile(raw)
            doc = json.loads(raw)
        except (QwenchatError, ValueError) as exc:
            record.notes.append(f"unreadable profile: {exc}")
            return
        if record.load_host_s is not None and live.load is not None:
            # The query that paid the load: Genie's init-time and the host clock, once.
            live.load.genie_init_us = profile.init_time_us
        else:
            profile = dataclasses.replace(profile, init_time_us=None)
        record.profile = profile
        record.profile_json = doc

    def _timed_out(self, request: QueryRequest, record: QueryRecord) -> None:
        self._judge_timeout(request, record)
        self._abandon()


def _keep_lines(record: QueryRecord, stdout: str) -> None:
    """genie-app's stdout before a failed load, kept on the record as lines outside a reply
    (what a replay and ``classify`` read), so the failure can be diagnosed from them."""
    now = time.monotonic()
    record.events += [
        TimedEvent(now, ev.OtherLine(line.strip()))
        for line in stdout.splitlines()
        if line.strip()
    ]


def _text(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode("utf-8", errors="replace"))


def _sampler_only(settings: SamplerSettings) -> SamplerSettings:
    return SamplerSettings(
        temp=settings.temp, top_k=settings.top_k, top_p=settings.top_p, seed=settings.seed
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def open_session(bundle: PhoneBundle) -> SessionEngine:
    """A session engine whose genie-app answered (SessionUnavailable otherwise)."""
    from qwenchat.runner.occupancy import refuse_second_load

    engine = SessionEngine(bundle)
    engine.sweep_stale()
    refuse_second_load(engine.device, engine.layout.tmp_dir, engine.owner_tag)
    try:
        engine.start()
    except BundleError as exc:
        raise SessionUnavailable(exc.message, hint=exc.hint) from exc
    return engine
