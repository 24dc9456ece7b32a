"""QAIRT version strings as AI Hub writes them (``v2.31.0.250130151446_114721``: release,
build date and time, build number; ai-hub-models issues #168 and #109, and the provenance of
tests/data/real/aihubmodels168_err1007_xelite_qairt231) are read and compared by the parts
that name a build: release and build date.

Failure modes:
- AI Hub's string is not recognised, so the binaries' version is "unknown" and no mismatch
  warning ever fires (push-assets and doctor);
- the time of day or AI Hub's build number is compared, so the SDK's own 2.31.0.250130 is
  called a mismatch with the binaries it built;
- a different release or build date matches.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fixtures_bundle import bundle_variant, qairt_with_version

from qwenchat.assets.bundle import plan_bundle
from qwenchat.assets.qairt_version import binaries_qairt_version, versions_match

AIHUB = "v2.31.0.250130151446_114721"


@pytest.mark.parametrize(
    ("a", "same"),
    [
        ("2.31.0.250130", True),
        ("2.31.0", True),
        ("v2.31.0.250130151446_999999", True),
        ("2.31.0.250131", False),
        ("2.31.1.250130", False),
        ("2.28.2.241116", False),
    ],
)
def test_aihub_versions_compare_by_release_and_build_date(a, same):
    assert versions_match(a, AIHUB) is same
    assert versions_match(AIHUB, a) is same


def _hub_bundle(tmp_path, synthetic_bundle, compiled: str):
    folder = bundle_variant(tmp_path / "bundle", synthetic_bundle, seed=7)
    (folder / "manifest.json").write_text(json.dumps({
        "format": "qwenchat-hub-bundle/1",
        "model": {"name": "qwen2-7b-instruct"},
        "tool_versions": {"qairt": compiled},
    }))  # fmt: skip
    return folder


def test_the_binaries_aihub_version_is_read(tmp_path, synthetic_bundle):
    folder = _hub_bundle(tmp_path, synthetic_bundle, AIHUB)
    assert binaries_qairt_version(folder) == (
        "2.31.0.250130151446_114721", str(folder / "manifest.json")
    )


def test_a_mismatch_with_an_aihub_version_is_warned(tmp_path, synthetic_bundle):
    folder = _hub_bundle(tmp_path, synthetic_bundle, AIHUB)
    qairt = qairt_with_version(tmp_path / "q", synthetic_bundle.qairt, "version: 2.28.2.241116\n")
    plan = plan_bundle(folder, qairt, "SM8750")
    assert plan.warnings == [
        f"QAIRT mismatch: the runtime being pushed is QAIRT 2.28.2.241116 ({qairt}/sdk.yaml), "
        "the context binaries were compiled with QAIRT 2.31.0.250130151446_114721 "
        f"({folder}/manifest.json); Genie may refuse to load them (error 5005). Use the QAIRT "
        "2.31.0.250130151446_114721 SDK (--qairt)."
    ]
    same = qairt_with_version(tmp_path / "s", synthetic_bundle.qairt, "version: 2.31.0.250130\n")
    assert plan_bundle(folder, same, "SM8750").warnings == []


def test_doctor_judges_an_aihub_version():
    from qwenchat.checks.doctor import _qairt_version_check

    ok = _qairt_version_check(SimpleNamespace(qairt_version="2.31.0.250130",
                                              binaries_qairt_version="2.31.0.250130151446_114721"))
    assert (ok.ok, ok.warn) == (True, False)
    bad = _qairt_version_check(SimpleNamespace(qairt_version="2.28.2.241116",
                                               binaries_qairt_version="2.31.0.250130151446_114721"))
    assert bad.warn and bad.detail == (
        "the phone runs QAIRT 2.28.2.241116, the context binaries were compiled with QAIRT "
        "2.31.0.250130151446_114721"
    )
