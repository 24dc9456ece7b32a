"""What real phones printed (tests/data/real/, each with its provenance) goes through the same
parser, profile reader and diagnosis as a live run, and gives what a person reading the
capture sees. Every expected value below was read off the capture by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenchat.genie.failures import diagnose
from qwenchat.runner.record import Outcome
from qwenchat.runner.replay import load_capture, replay

REAL = Path(__file__).parent / "data" / "real"


def _record(name: str):
    files = [p for p in REAL.iterdir() if p.name.startswith(name + ".")]
    assert files, name
    return replay(load_capture(files[0]))


def test_every_capture_has_its_provenance():
    stems = {p.name.split(".")[0] for p in REAL.iterdir() if p.suffix in (".txt", ".json")}
    for stem in stems:
        prov = json.loads((REAL / f"{stem}.provenance.json").read_text())
        assert prov["source"], stem
        assert prov.get("issue_url") or prov.get("repository") or "UNATTRIBUTED" in stem, stem


def test_the_tutorial_sample_with_its_kpis_block():
    record = _record("tutorial_readme_2024_kpis")
    assert record.outcome is Outcome.FINISHED
    assert record.libgenie_version == "1.1.0"
    assert record.text == "\\n\\nFrance's capital is Paris."  # the README shows \n escaped
    kpis = record.kpis
    assert (kpis.init_us, kpis.prompt_us, kpis.generation_us) == (6549034, 196067, 740568)
    assert (kpis.prompt_rate, kpis.generation_rate) == (86.707710, 12.152884)
    assert "Unable to initialize logging in backend extensions." in record.other_lines[0]


def test_the_tutorial_sample_after_qualcomm_removed_the_kpis():
    record = _record("tutorial_readme_2026")
    assert record.outcome is Outcome.FINISHED and record.kpis is None
    assert record.text == "\\n\\nFrance's capital is Paris."


def test_the_oldest_figures_format_without_a_kpis_header():
    record = _record("aihubmodels80_llama2_7b_s23ultra_qnn225")
    assert record.outcome is Outcome.FINISHED and record.libgenie_version == "1.0.0"
    assert record.text.startswith("'s5Gmodem\nhopefullythis")
    assert record.text.endswith(">>>Qualcomm5GX50modem.")
    kpis = record.kpis
    assert (kpis.prompt_us, kpis.generation_us, kpis.generation_rate) == (2281999, 353360439, 0.464115)
    assert kpis.init_us is None and kpis.prompt_rate is None  # not printed: not invented


@pytest.mark.parametrize(
    ("name", "kind", "line"),
    [
        ("aihubapps26_invalid_interface_8elite", "qnn-interface", '[ERROR] "Unable to find a valid interface."'),
        ("aihubmodels192_err5005_qcs6490", "wrong-chip", "= 0 : err 5005"),
        ("aihubmodels289_err5005_sm8750_qairt244", "wrong-chip", "context index = 0 : err 5005"),
        ("aihubapps148_err5000_llama2_v79", "qairt-mismatch", "context index = 0 : err 5000"),
        ("aihubmodels168_err1007_xelite_qairt231", "context-load", "context index = 2 : err 1007"),
        ("aihubmodels143_missing_pos_id_dim_qnn228", "config-field", "Missing QnnHtp field: pos-id-dim"),
        ("aihubmodels82_map_at_key_not_found_qnn225", "config-field", "map::at:  key not found"),
    ],
)
def test_real_failures_are_named_with_the_line_that_gave_them_away(name, kind, line):
    record = _record(name)
    assert record.outcome is Outcome.FAILED
    assert record.failure is not None and record.failure.kind == kind
    assert line in record.failure.message
    assert record.failure.hint


def test_a_failed_load_that_exited_1_keeps_its_exit_code():
    record = _record("aihubapps148_err5000_llama2_v79")
    assert record.exit_code == 1 and record.libgenie_version == "1.2.0"


def test_the_skel_failure_seen_only_in_logcat():
    text = (REAL / "aihubapps35_skel_qnn_open_failed_oneplus12.logcat.txt").read_text()
    failure = diagnose(text)
    assert failure is not None and failure.kind == "missing-skel"
    assert "libQnnHtpV75Skel.so" in failure.message


def test_the_one_real_profile_document():
    record = _record("llama32_1b_xiaomi15_qnn236_UNATTRIBUTED")
    p = record.profile
    assert (p.init_time_us, p.num_prompt_tokens, p.time_to_first_token_us) == (1124713, 823, 531665)
    assert p.num_generated_tokens == 200 and p.token_generation_time_us == 5191579
    assert p.prompt_processing_rate == pytest.approx(1547.9876708984375)
    assert p.query_duration_us == 5726945


def test_an_unknown_file_is_one_usage_line(tmp_path):
    from qwenchat.errors import UsageError

    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    with pytest.raises(UsageError) as err:
        load_capture(stray)
    assert "neither a `qwenchat doctor --report` file nor a capture" in err.value.message
