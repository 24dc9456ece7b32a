"""The libGenie objects genie-app's script drives, simulated: configs, profiles, loggers and
dialogs that load the model ONCE (``dialog create``) and keep their KV cache across queries.

A dialog is the genie-t2t-run sim's one query, kept alive: the same load checks and tokenizer
(``genie_sim.main._create_dialog``), the same reply plan (``_plan_reply``), the same pacing on
the device profile, the same profile figures. What a query adds to the context stays there
until ``dialog reset``; a prompt that does not fit what is left fails and changes nothing.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from qwenchat.emulator.genie_sim import main as t2t
from qwenchat.emulator.genie_sim import profile_json, reply
from qwenchat.emulator.genie_sim.dialog_config import DialogConfig
from qwenchat.emulator.genie_sim.emulator_link import EmulatorLink
from qwenchat.emulator.genie_sim.runtime import Env
from qwenchat.emulator.genie_sim.state import DialogState, load_state, save_state
from qwenchat.emulator.genie_sim.timing import Pacer, load_profile, sleep_until

LOG_LEVELS = ("error", "warning", "info", "verbose")


class QueryFailed(Exception):
    """A libGenie call failed: ``lines`` are Genie's log lines (stderr), ``what`` the
    exception text genie-app prints in red."""

    def __init__(self, what: str, *lines: str) -> None:
        super().__init__(what)
        self.what = what
        self.lines = list(lines)


@dataclass
class SimProfile:
    """A GenieProfile: collects the events of every dialog made from a config bound to it,
    from its creation on; saving it does not clear it (cumulative)."""

    created: float = field(default_factory=time.monotonic)
    components: dict[str, list[dict]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, component: str, event: dict) -> None:
        with self.lock:
            self.components.setdefault(component, []).append(event)

    def document(self) -> dict:
        with self.lock:
            comps = [
                {"name": name, "type": "dialog", "events": list(events)}
                for name, events in self.components.items()
            ]
        return profile_json.document(self.created, comps)


@dataclass
class SimLog:
    """A GenieLog with an output file: ``%8.1fms [LEVEL]: message`` lines, as genie-app's
    log callback writes them. Without a file, nothing is written (Genie's default: unknown)."""

    level: str
    path: Path | None
    created: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.path is not None:
            self.path.write_text("")  # std::ofstream truncates at log create

    def write(self, level: str, message: str) -> None:
        if self.path is None or LOG_LEVELS.index(level) > LOG_LEVELS.index(self.level):
            return
        ms = (time.monotonic() - self.created) * 1000.0
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{ms:8.1f}ms [{level.upper()}]: {message}\n")


@dataclass
class SimConfig:
    """A GenieDialogConfig: the JSON text and what is bound to it."""

    text: str
    dcfg: DialogConfig
    profiles: list[SimProfile] = field(default_factory=list)
    logs: list[SimLog] = field(default_factory=list)


class Sink:
    """Where a query's reply goes: stdout with Genie's markers, or a file (text only)."""

    def begin(self) -> None: ...
    def piece(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def abort(self) -> None: ...


class ConsoleSink(Sink):
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write

    def begin(self) -> None:
        self.write(b"[BEGIN]: ")

    def piece(self, data: bytes) -> None:
        self.write(data)

    def end(self) -> None:
        self.write(b"[END]\n")

    def abort(self) -> None:
        self.write(b"[ABORT]: ")


class FileSink(Sink):
    """OUTPUT_FILE: truncated when the query starts, each piece written and flushed."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()

    def piece(self, data: bytes) -> None:
        self.file.write(data)

    def close(self) -> None:
        self.file.close()


class SimDialog:
    """One GenieDialog: the model loaded once, the KV cache kept across queries."""

    def __init__(
        self,
        *,
        component: str,
        config: SimConfig,
        link: EmulatorLink,
        env: Env,
        err_line: Callable[[str], None],
    ) -> None:
        """GenieDialog_create: the load checks, then init_ms (scaled) of loading."""
        self.component = component
        self.link = link
        self.env = env
        self.err_line = err_line
        self.profiles = list(config.profiles)
        self.logs = list(config.logs)
        t0 = time.monotonic()
        settings = link.settings()
        self.pacer = Pacer(
            load_profile(settings.profile), settings.time_scale, settings.jitter, random.Random()
        )
        self.heat = t2t.Heat(link)
        shim = SimpleNamespace(config_text=config.text, log=None)
        # The one place the model's files and tokenizer are "loaded": genie-t2t-run's own.
        self.dcfg, self.tokenizer = t2t._create_dialog(shim, settings, env)
        # The tokenizer's tables (150k+ entries) would be traversed by every full garbage
        # collection, pauses in the middle of later queries a real genie-app does not have.
        gc.freeze()
        init_s = self.pacer.init_s()
        sleep_until(t0 + init_s)
        create = profile_json.Span(t0, time.monotonic())
        self.heat.busy(init_s * t2t.INIT_HEAT_SHARE)
        self.heat.flush(force=True)
        for p in self.profiles:
            p.add(component, profile_json.create_event(create))
        self._log("info", f"SIMULATED: {len(self.dcfg.ctx_bins)} context binaries 'loaded'")
        self.n_past = 0
        self.tokens: list[int] = []
        self.max_tokens: int | None = None
        self._abort = threading.Event()
        self._busy = threading.Lock()

    def _log(self, level: str, message: str) -> None:
        for log in self.logs:
            log.write(level, message)

    # ---- queries ---------------------------------------------------------------------

    def signal_abort(self) -> None:
        """GenieDialog_signal(ABORT): stops the query in progress (none: nothing to do)."""
        if self._busy.locked():
            self._abort.set()

    def _wait(self, deadline: float) -> bool:
        """Sleep until ``deadline``; True if an abort came first."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._abort.is_set()
            if self._abort.wait(left):
                return True

    def query(self, prompt: str, sink: Sink, ids: list[int] | None = None) -> None:
        """GenieDialog_query of ``prompt``; with ``ids``, GenieDialog_tokenQuery of them
        (``prompt`` is then what they say, for planning the reply: tokenizer.prompt_view)."""
        with self._busy:
            self._abort.clear()
            self._query(prompt, sink, ids)

    def _query(self, prompt: str, sink: Sink, ids: list[int] | None = None) -> None:
        # TTFT runs from the query call, which tokenizes (as GenieDialog_query does): the sim's
        # own bookkeeping (its settings, tokenizing, planning the reply) is paid inside it.
        query_start = time.monotonic()
        faults = self.link.settings().faults  # switches thrown mid-session apply now
        dcfg = self.dcfg
        if self.max_tokens is not None:
            dcfg = dataclasses.replace(dcfg, max_num_tokens=self.max_tokens)
        text_ids = self.tokenizer.encode(prompt) if ids is None else list(ids)
        query_ids = dcfg.query_prefix(self.n_past) + text_ids
        n_prompt = len(query_ids)
        if self.n_past + n_prompt > dcfg.context_size:
            line = (
                f"[ERROR] Context limit exceeded ({self.n_past} + {n_prompt} > {dcfg.context_size})"
            )
            self.err_line(line)
            self._log("error", line[len("[ERROR] ") :])
            sink.end()
            # libGenie writes the exception's text to stderr itself (GenieDialog_query's
            # catch); the wrapper's failure is genie-app's red line.
            self.err_line("Context Size was exceeded.")
            raise QueryFailed("Failed to query.")
        if faults.hang_before_first_token:
            while True:  # until killed, like a wedged NPU session
                time.sleep(3600)

        shim = SimpleNamespace(prompt=prompt)
        gen_ids, print_limit = t2t._plan_reply(shim, dcfg, self.tokenizer, n_prompt)
        aborted = self._wait(query_start + self.pacer.prefill_s(n_prompt))
        prefill_end = time.monotonic()
        ttft = prefill_end - query_start
        # Reported with the first piece, not here: a round trip to the phone's thermal model
        # must not sit between the prefill's end and the first token.
        self.heat.busy(ttft)
        emitted: list[int] = []
        overflow = False
        if not aborted:
            room = dcfg.context_size - (self.n_past + n_prompt)
            # As genie-t2t-run's sim: a reply that does not fit stops after room + 1 tokens
            # (the decode step's context check throws), then the query fails below.
            overflow = len(gen_ids) > room
            emit = gen_ids[: room + 1] if overflow else gen_ids
            crash_after = faults.crash_after_tokens
            tok_dt = self.pacer.token_s()
            streamer = reply.Utf8Streamer()
            raw_done = 0
            mark = prefill_end
            if crash_after is not None and crash_after <= 0:
                _crash(self.heat, mark)
            sink.begin()
            # As genie-t2t-run's sim: the first piece at TTFT, one decode step per later one
            # and one more for the step that ends the reply.
            for i, tid in enumerate(emit):
                if self._wait(prefill_end + i * tok_dt):
                    aborted = True
                    break
                if ids is not None:  # tokenQuery's callback writes each id and a space
                    sink.piece(f"{tid} ".encode())
                else:
                    piece = reply.token_bytes(self.tokenizer, tid)
                    allowed = (piece[: max(0, print_limit - raw_done)] if print_limit >= 0
                               else piece)
                    raw_done += len(piece)
                    chunk = streamer.push(allowed)
                    if chunk:
                        sink.piece(chunk)
                emitted.append(tid)
                mark = self.heat.busy_since(mark)
                self.heat.flush()
                if crash_after is not None and i + 1 >= crash_after:
                    _crash(self.heat, mark)
            if emitted and not aborted and self._wait(prefill_end + len(emitted) * tok_dt):
                aborted = True
            self.heat.busy_since(mark)
        decode_end = time.monotonic()
        if aborted:
            sink.abort()
        else:
            sink.end()
        if overflow and not aborted:
            # libGenie: [END], "Context Size was exceeded." on stderr, the query fails, and
            # no profile event is added (the exception skips addProfileStat). The KV cache
            # holds the whole context; the last token printed never went into it.
            self.n_past = dcfg.context_size
            self.tokens += query_ids + emitted[:-1]
            self.heat.flush(force=True)
            self.err_line("Context Size was exceeded.")
            raise QueryFailed("Failed to query.")
        generation_s = decode_end - prefill_end if emitted else 0.0
        # What was prefilled and generated stays in the KV cache (an aborted reply's tokens
        # too: Genie does not roll them back).
        self.n_past += n_prompt + len(emitted)
        self.tokens += query_ids + emitted
        self.heat.flush(force=True)
        event = profile_json.query_event(
            profile_json.Span(query_start, decode_end),
            n_prompt=n_prompt,
            ttft_s=ttft,
            n_generated=len(emitted),
            generation_s=generation_s,
        )
        for p in self.profiles:
            p.add(self.component, event)
        self._log(
            "info",
            f"SIMULATED: query: {n_prompt} prompt tokens, {len(emitted)} generated, "
            f"n_past {self.n_past}{' (aborted)' if aborted else ''}",
        )

    def apply_sampler(self, config: dict) -> None:
        """GenieSampler_applyConfig on this dialog's sampler: later queries sample with it;
        the model and the KV cache stay (keys as genie_config.json's dialog.sampler)."""
        with self._busy:
            self.dcfg = dataclasses.replace(
                self.dcfg,
                seed=int(config.get("seed", self.dcfg.seed)),
                temp=float(config.get("temp", self.dcfg.temp)),
                top_k=int(config.get("top-k", self.dcfg.top_k)),
                top_p=float(config.get("top-p", self.dcfg.top_p)),
            )

    # ---- state -----------------------------------------------------------------------

    def reset(self) -> None:
        with self._busy:
            self.n_past = 0
            self.tokens = []
            self._log("info", "SIMULATED: dialog reset, n_past = 0")

    def save(self, path: str) -> None:
        with self._busy:
            save_state(
                self.env.host(path), DialogState(self.n_past, list(self.tokens), self.dcfg.identity)
            )

    def restore(self, path: str) -> None:
        with self._busy:
            state = load_state(self.env.host(path), path, self.dcfg.identity)
            self.n_past, self.tokens = state.n_past, list(state.tokens)

    def free(self) -> None:
        with self._busy:
            start = time.monotonic()
            sleep_until(start + self.pacer.free_s())
            span = profile_json.Span(start, time.monotonic())
            for p in self.profiles:
                p.add(self.component, span.event("GenieDialog_free"))


def _crash(heat, mark: float) -> None:  # noqa: ANN001
    """SIMULATED fault: die like a native crash (SIGSEGV; the shell reports status 139)."""
    heat.busy_since(mark)
    heat.flush(force=True)
    sys.stdout.flush()
    try:
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    except ValueError:
        pass  # not the main thread (an async query): SIGSEGV is at its default anyway
    os.kill(os.getpid(), signal.SIGSEGV)
    os._exit(139)  # not reached
