"""The per-query engine: one genie-t2t-run process per query, as Qualcomm's tools run it.

The prompt travels only as a file (``push_bytes`` to ``<tmp>/prompt-<uuid>.txt``, then
``--prompt_file``): user text never appears on a shell command line. The shell prints its
pid and ``exec``s Genie, so a stop reaches exactly that process. ``--profile`` gives Genie's
own figures; ``--save``/``--restore`` carry a chat's dialog state in ``<states>/<dialog>``.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import threading
import time
import uuid
from typing import Any

from qwenchat.device.space import full_hint
from qwenchat.errors import (
    DeviceCommandError,
    DeviceError,
    DeviceTimeoutError,
    PhoneFullError,
    QwenchatError,
)
from qwenchat.genie import stream as ev
from qwenchat.genie.command import GenieInvocation
from qwenchat.genie.failures import phone_full
from qwenchat.genie.id_text import IdTextDecoder
from qwenchat.genie.profile import parse_profile
from qwenchat.runner.engine import Engine, TextCallback
from qwenchat.runner.leftovers import STALE_MIN, file_key, marker, sweep
from qwenchat.runner.phone_bundle import PhoneBundle
from qwenchat.runner.record import Outcome, QueryRecord, TimedEvent, classify
from qwenchat.runner.request import QueryRequest, SamplerSettings
from qwenchat.runner.session_files import owner_tag
from qwenchat.runner.stop import pids_running_with, stop_process
from qwenchat.shellwords import quote


def invocation(layout, **options: Any) -> GenieInvocation:  # noqa: ANN001 - PhoneLayout
    """genie-t2t-run as pushed in ``layout``; ``options`` are the run's own."""
    return GenieInvocation(
        binary=layout.genie_binary,
        bundle_dir=layout.bundle_dir,
        lib_dir=layout.lib_dir,
        skel_dir=layout.skel_dir,
        **options,
    )


class ProcessEngine(Engine):
    name = "process"

    def __init__(self, bundle: PhoneBundle) -> None:
        super().__init__(bundle)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._cancelled = threading.Event()
        self._running = threading.Event()
        self._config_pushed: dict[str, str] = {}  # dialog -> rendered config on the phone
        # Every file a query makes carries its owner: the next run removes a killed one's.
        self.owner_tag = owner_tag()
        self._key = file_key(self.owner_tag)
        # Per-chunk (arrival, after on_text) host times, for the overhead benchmark.
        self.timing: list[tuple[float, float]] | None = None
        # Whether this genie-t2t-run takes --tokens_file (probed once, when first needed).
        self.token_queries: bool | None = None

    def takes_token_ids(self) -> bool:
        """genie-t2t-run's usage names --tokens_file (QAIRT 2.40 has it; when it was added
        is unknown, so an SDK is asked, as with --pid: `-h` prints the usage, exit 0)."""
        if self.token_queries is None:
            command = invocation(self.layout).shell_command() + " -h"
            try:
                result = self.device.shell(command, timeout=60)
                self.token_queries = "--tokens_file" in result.text
            except QwenchatError:
                self.token_queries = False
        return self.token_queries

    # ----- leftovers
    STALE_MIN = STALE_MIN

    def sweep_stale(self) -> None:
        """Remove the prompt, profile and config files and the dialog states that runs now
        gone from this host left (killed, or their link dropped before their own clean-up),
        and any such file older than STALE_MIN minutes (``leftovers.py``)."""
        sweep(self.device, self.layout.tmp_dir, self.layout.states_dir)

    # ----- dialog state
    def state_path(self, dialog: str) -> str:
        return posixpath.join(self.layout.states_dir, dialog)

    def has_dialog(self, dialog: str) -> bool:
        return self.device.stat(self.state_path(dialog)) is not None

    def forget(self, dialog: str) -> None:
        paths = [
            self.state_path(dialog),
            marker(self.layout.tmp_dir, dialog),
            self._dialog_config_path(dialog),
        ]
        done = self.device.shell("rm -rf " + " ".join(quote(p) for p in paths), timeout=30)
        if not done.ok:
            # A saved dialog holds the KV cache (hundreds of MB on a phone): the chat keeps
            # it as an orphan and tries again when it ends or finds the phone again.
            raise DeviceCommandError(
                f"the phone did not remove dialog {dialog}'s saved state "
                f"(rm exit {done.exit_code}: {(done.error_text or done.text).strip()[:200]})"
            )
        self._config_pushed.pop(dialog, None)

    def _dialog_config_path(self, dialog: str) -> str:
        return posixpath.join(self.layout.tmp_dir, f"session-{dialog}.json")

    def render_config(self, settings: SamplerSettings) -> str | None:
        """The query's genie_config.json text, or None when the bundle's own will do."""
        cfg = self.bundle.config
        only_length = settings.updated(max_tokens=None).is_default
        if settings.is_default or (only_length and settings.max_tokens == cfg.max_num_tokens):
            return None
        cfg = cfg.with_overrides(
            max_num_tokens=settings.max_tokens,
            temp=settings.temp,
            top_k=settings.top_k,
            top_p=settings.top_p,
            seed=settings.seed,
        )
        # Paths stay as the bundle wrote them (relative): genie-t2t-run runs with the bundle
        # dir as its working dir, and a saved state stays valid for both configs.
        data: dict[str, Any] = cfg.to_json_dict()
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    # ----- one query
    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            pid = self._pid
        if pid is not None and self._running.is_set():
            self._stop(pid)

    def query(self, request: QueryRequest, on_text: TextCallback | None = None) -> QueryRecord:
        self._cancelled.clear()
        record = QueryRecord(engine=self.name, started_at=time.monotonic())
        tmp = self.layout.tmp_dir
        uid = uuid.uuid4().hex
        prompt_file = posixpath.join(tmp, f"prompt-{self._key}-{uid}.txt")
        profile_file = posixpath.join(tmp, f"profile-{self._key}-{uid}.json")
        cleanup = [prompt_file, profile_file]
        config = self.layout.config_path
        try:
            rendered = self.render_config(request.settings)
            if rendered is not None:
                if request.dialog is not None:
                    config = self._dialog_config_path(request.dialog)
                    if self._config_pushed.get(request.dialog) != rendered:
                        self.device.push_bytes(rendered.encode("utf-8"), config)
                        self._config_pushed[request.dialog] = rendered
                else:
                    config = posixpath.join(tmp, f"config-{self._key}-{uid}.json")
                    cleanup.append(config)
                    self.device.push_bytes(rendered.encode("utf-8"), config)
            use_ids = (request.prompt_ids is not None and request.decode is not None
                       and self.takes_token_ids())
            if use_ids:  # token ids: the user's text reaches the model byte-exact, as text
                prompt_file = posixpath.join(tmp, f"tokens-{self._key}-{uid}.txt")
                cleanup.append(prompt_file)
                ids_text = " ".join(str(i) for i in request.prompt_ids or ()) + "\n"
                self.device.push_bytes(ids_text.encode("ascii"), prompt_file)
            else:
                self.device.push_bytes(request.prompt.encode("utf-8"), prompt_file)
            state = self.state_path(request.dialog) if request.dialog else None
            if state is not None and request.dialog and not request.follow_up:
                # genie-t2t-run --save wants an existing directory; its owner goes beside it.
                self.device.shell(
                    f"mkdir -p {quote(state)} {quote(tmp)} && echo {quote(self.owner_tag)} > "
                    f"{quote(marker(tmp, request.dialog))}",
                    timeout=30,
                )
            command = invocation(
                self.layout,
                config=config,
                prompt_file=None if use_ids else prompt_file,
                tokens_file=prompt_file if use_ids else None,
                profile=profile_file,
                save=state,
                restore=state if request.follow_up else None,
            ).shell_command()
            self._stream(command, request, record, on_text, ids_reply=use_ids)
            if record.outcome is Outcome.FINISHED:
                self._read_profile(profile_file, record)
        except DeviceTimeoutError:
            self._timed_out(request, record)
        except PhoneFullError as exc:
            record.outcome = Outcome.FAILED  # the link is fine: not "device lost"
            record.failure = phone_full(
                exc.message, full_hint(self.device, self.layout.work_dir, exc.default_hint)
            )
        except DeviceError as exc:
            record.outcome = Outcome.DEVICE_LOST
            record.error = exc.message
        except BaseException:
            # Ctrl-C outside a chat (bench), SIGTERM/SIGHUP or SystemExit: the phone's
            # process must not outlive us, and it is stopped the same way as a cancel.
            with self._lock:
                pid = self._pid
            try:
                if pid is not None:
                    self._stop(pid)
                if record.sent_at:
                    # The interrupt may have come before Genie's own pid line: find it by
                    # this query's unique prompt file on its command line.
                    for other in pids_running_with(self.device, prompt_file):
                        if other != pid:
                            self._stop(other)
            except QwenchatError:
                pass
            raise
        finally:
            if not record.ended_at:
                record.ended_at = time.monotonic()
            with self._lock:
                self._pid = None
            self._running.clear()
            if record.outcome is not Outcome.DEVICE_LOST:
                try:
                    self.device.shell("rm -f " + " ".join(quote(p) for p in cleanup), timeout=30)
                except QwenchatError:
                    pass  # cleanup of tmp files must not hide the query's result
        return record

    def _stream(
        self,
        command: str,
        request: QueryRequest,
        record: QueryRecord,
        on_text: TextCallback | None,
        ids_reply: bool = False,
    ) -> None:
        parser = ev.GenieStreamParser(None if ids_reply else request.prompt)
        decoder = IdTextDecoder(request.decode) if ids_reply and request.decode else None
        timing = self.timing
        self._running.set()

        def handle(at: float, events: list[ev.StreamEvent]) -> None:
            for event in events:
                if decoder is None:
                    take(at, event)
                elif isinstance(event, ev.ReplyText):
                    # A token-id query's reply is ids: the record and the screen get text.
                    take(at, ev.ReplyText(decoder.feed(event.text)))
                else:
                    if isinstance(event, (ev.End, ev.Abort)):
                        rest = decoder.finish()
                        if rest:
                            take(at, ev.ReplyText(rest))
                    take(at, event)

        def take(at: float, event: ev.StreamEvent) -> None:
            record.events.append(TimedEvent(at, event))
            # Genie's own pid line (--pid) wins over the shell's: same process where
            # the shell execs, the only right one where something forks in between.
            if isinstance(event, ev.PidLine) and (record.pid is None or event.source == "genie"):
                with self._lock:
                    self._pid = record.pid = event.pid
                if self._cancelled.is_set():  # the cancel came before the pid line
                    self._stop(event.pid)
            elif isinstance(event, ev.ReplyText) and event.text and on_text is not None:
                on_text(event.text)

        bounds = request.bounds
        record.sent_at = time.monotonic()
        deadline = None if bounds.first_token is None else record.sent_at + bounds.first_token
        stream = self.device.stream_shell(
            command, first_byte_timeout=bounds.first_token, idle_timeout=bounds.first_token
        )
        raw: list[bytes] = []
        try:
            with stream:
                for chunk in stream:
                    at = time.monotonic()
                    raw.append(chunk)
                    handle(at, parser.feed(chunk))
                    if timing is not None:
                        timing.append((at, time.monotonic()))
                    # The pid and banner come at once; then silence while the model loads and
                    # the prompt is processed: the first-token bound runs until reply text flows,
                    # the stall bound after.
                    if record.first_token_at is not None:
                        stream.set_read_timeout(bounds.stall)
                    elif deadline is not None:
                        stream.set_read_timeout(max(0.001, deadline - time.monotonic()))
                handle(time.monotonic(), parser.finish())
        finally:  # a lost phone or a bound keeps what came, for reports
            record.stdout = b"".join(raw)
            record.stderr = stream.stderr.decode("utf-8", errors="replace")
        record.ended_at = time.monotonic()
        record.exit_code = stream.exit_code
        record.outcome = self._outcome(record)

    def _timed_out(self, request: QueryRequest, record: QueryRecord) -> None:
        self._judge_timeout(request, record)
        if record.outcome is not Outcome.TIMED_OUT:
            return
        if record.pid is not None:
            with contextlib.suppress(QwenchatError):
                self._stop(record.pid)

    def _outcome(self, record: QueryRecord) -> Outcome:
        if self._cancelled.is_set():
            if record.pid is not None:
                self._stop(record.pid)
            return Outcome.CUT
        return classify(record)

    def _read_profile(self, path: str, record: QueryRecord) -> None:

        if self.device.stat(path) is None:
            record.notes.append("genie-t2t-run exited without writing its --profile JSON")
            return
        raw = self.device.pull_bytes(path)
        try:
            record.profile = parse_profile(raw)
            record.profile_json = json.loads(raw)
        except (QwenchatError, ValueError) as exc:  # a missing figure must not lose the reply
            record.notes.append(f"unreadable profile: {exc}")

    def _stop(self, pid: int) -> None:
        stop_process(self.device, pid)
