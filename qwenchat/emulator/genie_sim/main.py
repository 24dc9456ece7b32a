"""One run of the simulated genie-t2t-run: parse, "load", one query, save, profile, exit.

Flow and streams follow the real main(): the --pid line and the libGenie banner go to stdout
before the dialog is created; any exception message goes to stderr and the exit status is 1
with no profile written; the profile is written at exit, after the query and after --save.

No signal handlers, like the real binary: SIGINT/SIGTERM/SIGHUP kill it on the spot, so no
profile and no saved state are left behind.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

from qwenchat.emulator.genie_sim import cli, reply, runtime
from qwenchat.emulator.genie_sim import tokenizer as sim_tokenizer
from qwenchat.emulator.genie_sim.dialog_config import DialogConfig, parse_dialog_config
from qwenchat.emulator.genie_sim.emulator_link import EmulatorLink, NotOnEmulator, SimSettings
from qwenchat.emulator.genie_sim.profile_json import Span, profile_document, write_profile
from qwenchat.emulator.genie_sim.runtime import Env, LaunchFailure
from qwenchat.emulator.genie_sim.state import DialogState, load_state, save_state
from qwenchat.emulator.genie_sim.timing import (
    Pacer,
    load_profile,
    process_start_monotonic,
    sleep_until,
)

BANNER = "[SIMULATED] genie-t2t-run: qwenchat emulator (no model runs here)"
HEAT_EVERY_S = 1.0  # host seconds between thermal updates during a long run
INIT_HEAT_SHARE = 0.1  # loading weights keeps the NPU mostly idle
_KEEP_ALIVE: list[object] = []


def _out(data: bytes | str) -> None:
    buf = sys.stdout.buffer
    buf.write(data.encode() if isinstance(data, str) else data)
    buf.flush()


def _err(*lines: str) -> None:
    for line in lines:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


class Heat:
    """Reports busy time to the emulator's thermal model, now and then and at the end."""

    def __init__(self, link: EmulatorLink) -> None:
        self.link = link
        self.pending = 0.0
        self.since = time.monotonic()

    def busy(self, seconds: float) -> None:
        self.pending += max(0.0, seconds)

    def busy_since(self, mark: float) -> float:
        now = time.monotonic()
        self.busy(now - mark)
        return now

    def flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.pending > 0 and (force or now - self.since >= HEAT_EVERY_S):
            self.link.heat(self.pending)
            self.pending = 0.0
            self.since = now


def main(argv: list[str], *, t_main: float, prog: str = "genie-t2t-run") -> int:
    # Python installs a SIGINT handler and ignores SIGPIPE; the real binary does neither.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    t_start = process_start_monotonic(t_main)
    # For a person at the emulated phone's shell only: through a pipe, stderr carries what the
    # real genie-t2t-run writes there (its errors), so the product never has to filter it.
    if os.isatty(2):
        _err(BANNER)

    try:
        link = EmulatorLink()
        settings = link.settings()
    except NotOnEmulator as exc:
        _err(f"genie-t2t-run (SIMULATED): not on the qwenchat emulated phone: {exc}")
        return 1
    env = Env(os.getcwd())

    try:
        version = runtime.find_libgenie(env, os.environ.get("LD_LIBRARY_PATH"), prog)
    except LaunchFailure as failure:
        _err(*failure.lines)
        return 1

    def exists(path: str) -> bool:
        try:
            return env.host(path).exists()
        except OSError:
            return False

    parsed = cli.parse(argv, prog=prog, read_text=env.read_text, exists=exists)
    if parsed.stdout:
        _out(parsed.stdout)
    if parsed.stderr:
        sys.stderr.write(parsed.stderr)
        sys.stderr.flush()
    if parsed.exit_code is not None or parsed.args is None:
        return parsed.exit_code or 0
    args = parsed.args
    if args.pid:
        _out(f"genie-t2t-run pid: {os.getpid()}\n")
    _out(f"Using libGenie.so version {version}\n\n")
    try:
        return _run(args, settings, link, env, t_start)
    except LaunchFailure as failure:
        _err(*failure.lines)
        return 1


def _log(args: cli.Args, level: str, text: str) -> None:
    order = cli.LOG_LEVELS
    if args.log and order.index(level) <= order.index(args.log):
        _err(f"[{level.upper()}] {text}")


def _create_dialog(args: cli.Args, settings: SimSettings, env: Env) -> tuple[DialogConfig, object]:
    """GenieDialog_create's checks, in the order a real launch meets them."""
    dcfg = parse_dialog_config(args.config_text)
    if settings.faults.fail_load:
        raise LaunchFailure(
            "[ERROR] QnnDsp <E> Failed to map weights into the NPU's address space "
            "(SIMULATED fault: fail_load)",
            "Failed to create the dialog.",
        )
    arch = runtime.soc_arch(settings.soc)
    runtime.check_backend(
        env, os.environ.get("LD_LIBRARY_PATH"), os.environ.get("ADSP_LIBRARY_PATH"), arch
    )
    if dcfg.extensions:
        runtime.check_file(env, dcfg.extensions, "backend extensions config")
    tok_host = runtime.check_file(env, dcfg.tokenizer_path, "tokenizer")
    runtime.check_ctx_bins(env, dcfg.ctx_bins, arch)
    try:
        tokenizer = sim_tokenizer.load(tok_host)
    except Exception:  # noqa: BLE001 - any parse error is the same failure to Genie
        raise LaunchFailure(
            f"[ERROR] Failed to parse tokenizer file: {dcfg.tokenizer_path}",
            "Failed to create the dialog.",
        ) from None
    _log(args, "info", f"SIMULATED: {len(dcfg.ctx_bins)} context binaries for {arch} 'loaded'")
    # Freeing a Qwen2 vocabulary's ~450k objects takes a while; kept alive here, it goes
    # with the process at os._exit (see __main__), as the real binary's memory would.
    _KEEP_ALIVE.append(tokenizer)
    return dcfg, tokenizer


def _overflow(a: int, b: int, size: int) -> int:
    _err(f"[ERROR] Context limit exceeded ({a} + {b} > {size})")
    _out("[END]\n")
    _err("Context Size was exceeded.", "Failed to query.")
    return 1


def _filled_while_generating() -> int:
    """What the real binary does when the context fills mid-reply (read in Qualcomm's
    sources): GenieDialog_query catches the ContextLimitException, calls back with
    SENTENCE_END (genie-t2t-run prints ``[END]``), writes ``Context Size was exceeded.`` to
    stderr and returns GENIE_STATUS_WARNING_CONTEXT_EXCEEDED; genie-t2t-run's Dialog::query
    throws ``Failed to query.`` for any status but success/aborted/paused, and main() prints
    it and returns EXIT_FAILURE before ``--save`` and before the profile is written."""
    _out("[END]\n")
    _err("Context Size was exceeded.", "Failed to query.")
    return 1


def _run(args: cli.Args, settings: SimSettings, link: EmulatorLink, env: Env, t_start: float) -> int:
    pacer = Pacer(
        load_profile(settings.profile), settings.time_scale, settings.jitter, random.Random()
    )
    heat = Heat(link)
    dcfg, tokenizer = _create_dialog(args, settings, env)
    init_s = pacer.init_s()
    sleep_until(t_start + init_s)
    create = Span(t_start, time.monotonic())
    # Heat from the scheduled load time, not the measured one: when the host is busy, Python's
    # start-up can overrun a short scaled init, and that is not work the phone did.
    heat.busy(init_s * INIT_HEAT_SHARE)

    state = DialogState(0, [], dcfg.identity)
    if args.restore:
        state = load_state(env.host(args.restore), args.restore, dcfg.identity)
        _log(args, "info", f"SIMULATED: restored dialog state, n_past = {state.n_past}")

    # Genie's TTFT runs from the query call, which tokenizes the prompt itself: the sim's
    # own bookkeeping (tokenizing, planning the reply) is paid inside it, never after it.
    query_start = time.monotonic()
    tokens_mode = bool(args.tokens)
    if tokens_mode:
        text_ids = list(args.tokens)
        _out("[PROMPT TOKENS]: " + "".join(f"{t} " for t in text_ids) + "\n")
        # The reply is planned from what the ids say, control ids as control tokens: the
        # same reply, quote and "N tokens" as a text-mode query of that prompt.
        args.prompt = tokenizer.prompt_view(text_ids)
    else:
        text_ids = tokenizer.encode(args.prompt)
        _out(f"[PROMPT]: {args.prompt}\n\n")
    query_ids = dcfg.query_prefix(state.n_past) + text_ids
    n_prompt = len(query_ids)
    if state.n_past + n_prompt > dcfg.context_size:
        return _overflow(state.n_past, n_prompt, dcfg.context_size)
    if settings.faults.hang_before_first_token:
        while True:  # until killed, like a wedged NPU session
            time.sleep(3600)

    gen_ids, print_limit = _plan_reply(args, dcfg, tokenizer, n_prompt)
    sleep_until(query_start + pacer.prefill_s(n_prompt))
    prefill_end = time.monotonic()
    ttft = prefill_end - query_start
    # Reported with the first piece, not here: a round trip to the phone's thermal model
    # must not sit between the prefill's end and the first token.
    heat.busy(ttft)

    room = dcfg.context_size - (state.n_past + n_prompt)
    overflow = len(gen_ids) > room
    # A reply that does not fit: Genie samples the first token from the prefill and feeds each
    # later one back; qualla's BasicDialog checks ``n_past + 1 > ctx size`` before every decode
    # step and throws ContextLimitException there, so room + 1 tokens are out by then.
    emit = gen_ids[: room + 1] if overflow else gen_ids

    crash_after = settings.faults.crash_after_tokens
    tok_dt = pacer.token_s()
    streamer = reply.Utf8Streamer()
    raw_done = 0
    mark = prefill_end
    if crash_after is not None and crash_after <= 0:
        _crash(heat, mark)
    _out("[BEGIN]: ")
    # The first token is sampled from the prefill's last logits: it is out at TTFT, and token
    # k one decode step later each; the step that samples the end of the reply (EOS or the
    # limit) comes after the last printed piece, so the decode time stays n / rate.
    for i, tid in enumerate(emit):
        sleep_until(prefill_end + i * tok_dt)
        if tokens_mode:
            _out(f"{tid} ")
        else:
            piece = reply.token_bytes(tokenizer, tid)
            allowed = piece[: max(0, print_limit - raw_done)] if print_limit >= 0 else piece
            raw_done += len(piece)
            chunk = streamer.push(allowed)
            if chunk:
                _out(chunk)
        mark = heat.busy_since(mark)
        heat.flush()
        if crash_after is not None and i + 1 >= crash_after:
            _crash(heat, mark)
    if emit:
        sleep_until(prefill_end + len(emit) * tok_dt)
    decode_end = time.monotonic()
    generation_s = decode_end - prefill_end if emit else 0.0
    heat.busy_since(mark)
    n_generated = len(emit)
    if overflow:
        return _filled_while_generating()
    _out("[END]\n")
    if tokens_mode:
        _out("\n")
    query = Span(query_start, decode_end)

    if args.save:
        save_state(
            env.host(args.save),
            DialogState(
                n_past=state.n_past + n_prompt + n_generated,
                tokens=state.tokens + query_ids + emit,
                config_identity=dcfg.identity,
            ),
        )
        _log(args, "info", f"SIMULATED: dialog state saved to {args.save}")

    free_start = time.monotonic()
    sleep_until(free_start + pacer.free_s())
    free = Span(free_start, time.monotonic())
    heat.flush(force=True)
    if args.profile:
        doc = profile_document(
            create=create,
            query=query,
            free=free,
            n_prompt=n_prompt,
            ttft_s=ttft,
            n_generated=n_generated,
            generation_s=generation_s,
        )
        try:
            write_profile(env.host(args.profile), doc)
        except OSError:
            _err(f"Cannot create profile output file with name:{args.profile}")
            return 1
    return 0


def _crash(heat: Heat, mark: float) -> None:
    """SIMULATED fault: die like a native crash (SIGSEGV; the shell reports status 139)."""
    heat.busy_since(mark)
    heat.flush(force=True)
    sys.stdout.flush()
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGSEGV)
    os._exit(139)  # not reached


def _plan_reply(
    args: cli.Args, dcfg: DialogConfig, tokenizer, n_prompt: int
) -> tuple[list[int], int]:
    """Token ids of the reply and how many of their bytes may be printed (-1: all).

    Stop sequences: generation stops at the token that completes one; the text of the stop
    sequence itself (and anything after it in that token) is not printed. The tokens up to
    and including that one count as generated.
    """
    sampling = reply.Sampling(dcfg.seed, dcfg.temp, dcfg.top_k, dcfg.top_p)
    message = reply.last_user_message(args.prompt)
    target = reply.target_tokens(message, reply.reply_rng(sampling))
    text, sentence_ends = reply.reply_text(args.prompt, n_prompt, sampling, target)
    ids, token_ends = tokenizer.encode_with_ends(text)
    # The natural reply: whole sentences, at least ``target`` tokens, then EOS.
    for end in sentence_ends:
        n = sum(1 for stop in token_ends if stop <= end)
        if n >= target:
            ids = ids[:n]
            break
    if dcfg.max_num_tokens is not None:
        ids = ids[: dcfg.max_num_tokens]  # Genie stops there, even mid-character
    pieces = [reply.token_bytes(tokenizer, t) for t in ids]
    stops = [s.encode() for s in dcfg.stop_sequences]
    if stops:
        seen = b""
        for i, piece in enumerate(pieces):
            seen += piece
            hits = [seen.find(s) for s in stops if s in seen]
            if hits:
                return ids[: i + 1], min(hits)
    return ids, -1
