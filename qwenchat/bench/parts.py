"""``bench --method parts``: the quantity Qualcomm's published figures are (AI Hub profile jobs
of the context-binary parts: the NPU's execution time of one graph), measured on the phone
with the QAIRT tools for Android. Not available: it refuses, in one line naming what no
Qualcomm source read so far settles (README, "bench --method parts"), so that no number is
ever shown that only a simulation produced.

What the sources do settle (VERIFIED) and what they do not (MISSING) is kept here, one fact
per entry, and printed by the README's table.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenchat.errors import QwenchatError

METHODS = ("genie", "parts")


@dataclass(frozen=True)
class Fact:
    status: str  # VERIFIED, INFERRED or MISSING
    what: str
    source: str


FACTS: tuple[Fact, ...] = (
    Fact("VERIFIED", "AI Hub profiles each part's graph on its own: the profile job of Baichuan2's "
         "part 1 passes `--qnn_options context_enable_graphs=ar128_cl4096_1_of_5` (prompt "
         "processor) and `ar1_cl4096_1_of_5` (token generator)",
         "qai-hub-models v0.47 `models/baichuan2_7b/model.py`, get_hub_profile_options"),
    Fact("VERIFIED", "the published TTFT is the prompt processor's latency for 128 tokens, the "
         "rate the token generator's; the 4096-token TTFT is 32 x the 128-token one",
         "qai-hub-models `info.yaml` / `perf.yaml` of each model"),
    Fact("VERIFIED", "`qnn-net-run --retrieve_context FILE` loads a cached context binary and "
         "executes its graphs (`--model` and `--retrieve_context` are exclusive); `--backend` "
         "libQnnHtp.so; `--input_list FILE` (one list per graph, `__` skips a graph)",
         "qnn-net-run's help text in Qualcomm's AI Engine Direct manual (read in a verbatim "
         "copy: blog.csdn.net/weixin_38498942/article/details/135386805)"),
    Fact("VERIFIED", "`qnn-net-run --profiling_level basic|detailed` turns profiling on; the HTP "
         "backend reports the graph's accelerator execute time in microseconds "
         "(QNN_HTP_PROFILE_EVENTTYPE_GRAPH_EXECUTE_ACCEL_TIME_MICROSEC)",
         "QAIRT 2.39 docs: general/lpai/lpai_backend_profiler.html, "
         "api-rst/file_include_QNN_HTP_QnnHtpProfile.h.html"),
    Fact("INFERRED", "the log is `OUTPUT_DIR/qnn-profiling-data_0.log` and `qnn-profile-viewer "
         "--input_log LOG` prints `Execute Stats (Average):` with `NetRun: N us` and "
         "`Backend (Accelerator (execute) time): N us`",
         "third-party published outputs of the tool only; no Qualcomm page read shows them"),
    Fact("INFERRED", "AI Hub's 'NPU execution time' is that accelerator execute time of the one "
         "graph, averaged over its profile runs",
         "no AI Hub document read says which profile event its figure is"),
    Fact("MISSING", "how qnn-net-run runs ONE graph (ar128 or ar1) of a weight-shared context "
         "binary holding both, as AI Hub's context_enable_graphs does",
         "no qnn-net-run option for it in the help text read"),
    Fact("MISSING", "the parts' input tensors for qnn-net-run's raw files (names, shapes, "
         "dtypes, KV-cache layout) for every model and export, read from the binary",
         "only qai-hub-models' model.py of Baichuan2 lists them; no tool output of "
         "qnn-context-binary-utility for these binaries was found"),
)

REFUSAL = (
    "bench --method parts is not available: no Qualcomm source read says how qnn-net-run "
    "runs one graph (ar128 or ar1) of a weight-shared context binary, nor gives the parts' "
    "input tensors"
)
REFUSAL_HINT = (
    "Use bench's default method (Genie's end-to-end figures); the README's \"bench --method "
    "parts\" table lists what is verified and what is missing."
)


class PartsUnavailable(QwenchatError):
    """The parts method cannot run: the sources that would make its numbers true are missing."""


def check_method(method: str) -> None:
    """UsageError for an unknown method; PartsUnavailable (exit 1) for ``parts``."""
    from qwenchat.errors import UsageError

    if method not in METHODS:
        raise UsageError(f"--method {method!r}: must be one of {', '.join(METHODS)}",
                         "genie (the default) measures Genie end to end.")  # fmt: skip
    if method == "parts":
        raise PartsUnavailable(REFUSAL, REFUSAL_HINT)


def facts_table() -> str:
    """The README's table: one row per fact, its status and its source."""
    rows = ["| status | what | source |", "|---|---|---|"]
    rows += [f"| {f.status} | {f.what} | {f.source} |" for f in FACTS]
    return "\n".join(rows)
