"""One genie-t2t-run query on the phone, streamed.

The prompt travels only as a file (``push_bytes`` to ``<tmp>/prompt-<uuid>.txt``, then
``--prompt_file``): user text never appears on a shell command line. The process is started
with ``--pid`` so a Ctrl-C stops exactly that process (``kill -INT PID``, checked, then
``-9``); ``--profile`` gives Genie's own figures; ``--save``/``--restore`` keep the dialog
state of a chat session in ``<states>/<session-id>``.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenchat.device.base import Device
from qwenchat.errors import BundleError
from qwenchat.layout import PhoneLayout
from qwenchat.shellwords import quote

if TYPE_CHECKING:
    from qwenchat.chat.session import SamplerSettings
    from qwenchat.genie.config import GenieConfig
    from qwenchat.genie.profile import GenieProfile

GENIE_PROCESS = "genie-t2t-run"


@dataclass
class QueryOutcome:
    """What one genie-t2t-run process did."""

    text: str = ""
    ok: bool = False
    cancelled: bool = False
    context_overflow: bool = False
    aborted: bool = False
    exit_code: int | None = None
    pid: int | None = None
    profile: GenieProfile | None = None
    host_first_token_s: float | None = None  # from the start of the query (push included)
    error: str | None = None
    error_hint: str | None = None
    other_lines: list[str] = field(default_factory=list)


@dataclass
class StreamTiming:
    """Per-chunk timestamps for the overhead benchmark (arrival vs on-screen)."""

    arrivals: list[float] = field(default_factory=list)
    shown: list[float] = field(default_factory=list)


class GenieRunner:
    """Runs queries for one phone and one pushed bundle."""

    def __init__(self, device: Device, layout: PhoneLayout | None = None) -> None:
        self.device = device
        self.layout = layout or PhoneLayout()
        self._config: GenieConfig | None = None
        self._config_pushed: dict[str, str] = {}  # session id -> rendered config on the phone
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._cancelled = threading.Event()
        self._running = threading.Event()
        self.timing: StreamTiming | None = None

    # ----- the bundle's config
    @property
    def config(self) -> GenieConfig:
        if self._config is None:
            from qwenchat.genie.config import parse_genie_config

            path = self.layout.config_path
            if self.device.stat(path) is None:
                raise BundleError(
                    f"no Genie bundle on the phone ({path} is missing)",
                    hint="Push it first: `qwenchat push-assets` (or --device-dir for another work dir).",
                )
            text = self.device.pull_bytes(path).decode("utf-8")
            self._config = parse_genie_config(text, source=f"phone:{path}")
        return self._config

    @property
    def ctx_size(self) -> int:
        return self.config.context_size

    @property
    def bundle_max_tokens(self) -> int | None:
        return self.config.max_num_tokens

    @property
    def stop_sequences(self) -> list[str]:
        return self.config.stop_sequence

    def session_config(self, settings: SamplerSettings, max_tokens: int) -> str | None:
        """The per-session genie_config.json text, or None when the bundle's own will do.

        Sampler values are not part of the KV state: a new config never forces a rebuild.
        """
        cfg = self.config
        if settings.is_default and cfg.max_num_tokens == max_tokens:
            return None
        cfg = cfg.with_overrides(
            max_num_tokens=max_tokens,
            temp=settings.temp,
            top_k=settings.top_k,
            top_p=settings.top_p,
            seed=settings.seed,
        )
        # Paths stay as the bundle wrote them (relative): genie-t2t-run runs with the bundle
        # dir as its working dir, and a saved state stays valid for both configs.
        data: dict[str, Any] = cfg.to_json_dict()
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def tokenizer_file(self) -> Path:
        """The phone's tokenizer.json on the host, to count tokens before sending.

        Cached by content hash: ``sha256sum`` on the phone, pulled only when the host has no
        copy with that hash (or the phone cannot hash).
        """
        from qwenchat.paths import cache_dir

        remote = _absolute(self.layout.bundle_dir, self.config.tokenizer_path)
        folder = cache_dir() / "phone-tokenizers"
        folder.mkdir(parents=True, exist_ok=True)
        result = self.device.shell(f"sha256sum {quote(remote)}", timeout=60)
        words = result.text.split()
        digest = words[0] if result.ok and words and len(words[0]) == 64 else None
        if digest is not None and (folder / f"{digest}.json").exists():
            return folder / f"{digest}.json"
        if self.device.stat(remote) is None:
            raise BundleError(
                f"no tokenizer on the phone ({remote} is missing)",
                hint="Push the bundle again: `qwenchat push-assets`.",
            )
        data = self.device.pull_bytes(remote)
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        path = folder / f"{digest}.json"
        if not path.exists():
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

    # ----- dialog state
    def state_path(self, session_id: str) -> str:
        return posixpath.join(self.layout.states_dir, session_id)

    def state_exists(self, session_id: str) -> bool:
        return self.device.stat(self.state_path(session_id)) is not None

    def forget_state(self, session_id: str) -> None:
        paths = [self.state_path(session_id), self._session_config_path(session_id)]
        self.device.shell("rm -rf " + " ".join(quote(p) for p in paths), timeout=30)
        self._config_pushed.pop(session_id, None)

    def _session_config_path(self, session_id: str) -> str:
        return posixpath.join(self.layout.tmp_dir, f"session-{session_id}.json")

    # ----- one query
    def cancel(self) -> None:
        """Stop the running query's process; safe from any thread."""
        self._cancelled.set()
        with self._lock:
            pid = self._pid
        if pid is not None and self._running.is_set():
            self._kill(pid)

    def run(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        settings: SamplerSettings | None = None,
        max_tokens: int | None = None,
        restore: bool = False,
        save: bool = True,
        on_text: Callable[[str], None] | None = None,
    ) -> QueryOutcome:
        from qwenchat.chat.session import SamplerSettings

        self._cancelled.clear()
        started = time.monotonic()
        settings = settings or SamplerSettings()
        max_tokens = max_tokens or self.config.max_num_tokens
        tmp = self.layout.tmp_dir
        uid = uuid.uuid4().hex
        prompt_file = posixpath.join(tmp, f"prompt-{uid}.txt")
        profile_file = posixpath.join(tmp, f"profile-{uid}.json")
        config = self.layout.config_path
        rendered = self.session_config(settings, max_tokens) if max_tokens else None
        if rendered is not None:
            key = session_id or uid
            config = self._session_config_path(key)
            if self._config_pushed.get(key) != rendered:
                self.device.push_bytes(rendered.encode("utf-8"), config)
                self._config_pushed[key] = rendered
        self.device.push_bytes(prompt.encode("utf-8"), prompt_file)
        state = self.state_path(session_id) if session_id else None
        if state and save and not restore:
            # genie-t2t-run --save wants an existing directory.
            self.device.shell(f"mkdir -p {quote(state)}", timeout=30)
        invocation = self.layout.genie_invocation(
            config=config,
            prompt_file=prompt_file,
            profile=profile_file,
            save=state if (state and save) else None,
            restore=state if (state and restore) else None,
            pid=True,
        )
        outcome = QueryOutcome()
        try:
            self._stream(invocation.shell_command(), prompt, outcome, on_text, started)
            self._read_profile(profile_file, outcome)
        finally:
            with self._lock:
                self._pid = None
            self._running.clear()
            cleanup = [prompt_file, profile_file]
            if rendered is not None and not session_id:
                cleanup.append(config)
            try:
                self.device.shell("rm -f " + " ".join(quote(p) for p in cleanup), timeout=30)
            except Exception:  # cleanup of tmp files must not hide the query's result
                pass
        if self._cancelled.is_set():
            outcome.cancelled = True
            outcome.ok = False
        return outcome

    def _stream(
        self,
        command: str,
        prompt: str,
        outcome: QueryOutcome,
        on_text: Callable[[str], None] | None,
        started: float,
    ) -> None:
        from qwenchat.genie import stream as ev

        parser = ev.GenieStreamParser(prompt)
        parts: list[str] = []
        ended = False
        timing = self.timing
        self._running.set()

        def handle(events: list[Any]) -> None:
            nonlocal ended
            for event in events:
                if isinstance(event, ev.PidLine):
                    with self._lock:
                        self._pid = outcome.pid = event.pid
                    if self._cancelled.is_set():  # Ctrl-C came before the pid line
                        self._kill(event.pid)
                elif isinstance(event, ev.ReplyText):
                    if not event.text:
                        continue
                    if outcome.host_first_token_s is None:
                        outcome.host_first_token_s = time.monotonic() - started
                    parts.append(event.text)
                    if on_text is not None:
                        on_text(event.text)
                elif isinstance(event, ev.End):
                    ended = True
                elif isinstance(event, ev.Abort):
                    outcome.aborted = True
                elif isinstance(event, ev.ContextOverflow):
                    outcome.context_overflow = True
                elif isinstance(event, ev.OtherLine):
                    outcome.other_lines.append(event.text)

        stream = self.device.stream_shell(command)
        with stream:
            for chunk in stream:
                if timing is not None:
                    timing.arrivals.append(time.perf_counter())
                handle(parser.feed(chunk))
                if timing is not None:
                    timing.shown.append(time.perf_counter())
            handle(parser.finish())
        outcome.exit_code = stream.exit_code
        outcome.text = "".join(parts)
        if self._cancelled.is_set():
            if outcome.pid is not None:
                self._ensure_dead(outcome.pid)
            return
        stderr = stream.stderr.decode("utf-8", errors="replace") if stream.stderr else ""
        failed = (stream.exit_code not in (0, None)) or not ended or outcome.aborted
        if outcome.context_overflow:
            outcome.error = "context size exceeded"
            return
        if failed:
            from qwenchat.genie.failures import diagnose

            text = "\n".join(outcome.other_lines + [stderr])
            failure = diagnose(text)
            if failure is not None:
                outcome.error, outcome.error_hint = failure.message, failure.hint
            else:
                last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
                code = stream.exit_code
                outcome.error = (
                    f"genie-t2t-run stopped "
                    f"{'with exit code ' + str(code) if code is not None else 'unexpectedly'}"
                    + (f": {last.strip()}" if last.strip() else "")
                )
            return
        outcome.ok = True

    def _read_profile(self, path: str, outcome: QueryOutcome) -> None:
        from qwenchat.genie.profile import parse_profile

        if outcome.cancelled or self.device.stat(path) is None:
            return
        try:
            outcome.profile = parse_profile(self.device.pull_bytes(path))
        except Exception as exc:  # a missing figure must not lose the reply
            outcome.other_lines.append(f"unreadable profile: {exc}")

    # ----- stopping exactly our process
    # These run while another thread may be reading the query's stream: they go through the
    # device's side channel, never through the connection that stream is using.
    def _kill(self, pid: int) -> None:
        try:
            with self.device.side_channel() as dev:
                dev.shell(f"kill -INT {int(pid)}", timeout=10)
        except Exception:
            pass  # _ensure_dead checks and escalates

    def _alive(self, pid: int) -> bool:
        with self.device.side_channel() as dev:
            result = dev.shell(f"pidof {GENIE_PROCESS}", timeout=10)
        return str(int(pid)) in result.text.split()

    def _ensure_dead(self, pid: int, wait_s: float = 3.0) -> None:
        """After kill -INT: check with pidof that our process is gone, else kill -9."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return
            time.sleep(0.05)
        with self.device.side_channel() as dev:
            dev.shell(f"kill -9 {int(pid)}", timeout=10)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return
            time.sleep(0.05)
        from qwenchat.errors import DeviceCommandError

        raise DeviceCommandError(
            f"genie-t2t-run (pid {pid}) survived kill -9 on the phone",
            hint="Reboot the phone or kill it by hand: adb shell kill -9 " + str(pid),
        )


def _absolute(base: str, path: str) -> str:
    return path if path.startswith("/") else posixpath.join(base, path)


__all__ = ["GenieRunner", "QueryOutcome", "StreamTiming"]
