"""Every model's host-built tokenizer: what the registry promises, the cache keyed by the
content of every build input, one build for concurrent callers, and the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qwenchat.errors import ConfigError
from qwenchat.models import MODELS, get_model
from qwenchat.models.tokenizers import build, ensure_tokenizer, llama2, qwen
from qwenchat.models.tokens import TokenCounter

REPO = Path(__file__).resolve().parent.parent

# Hand-written: ids per model (Qwen2 151,643 ranks + 3; Qwen2.5 + 22; Llama 2 32,000;
# Baichuan2 125,696), the end-of-turn token's id, and whether the tokenizer is a stand-in.
EXPECTED = {
    "qwen2-7b-instruct": (151646, ("<|im_end|>", 151645), False),
    "qwen2.5-7b-instruct": (151665, ("<|im_end|>", 151645), False),
    "llama-v2-7b-chat": (32000, ("</s>", 2), False),
    "baichuan2-7b": (125696, ("</s>", 2), True),
}


BUILDER_FILE = {
    "qwen-tiktoken": "qwen.py",
    "qwen2.5-tiktoken": "qwen.py",
    "llama2-sentencepiece": "llama2.py",
    "baichuan2-standin": "baichuan2_standin.py",
}


def test_the_table_covers_every_model():
    assert sorted(EXPECTED) == sorted(spec.name for spec in MODELS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_model_gets_its_tokenizer(name):
    spec = get_model(name)
    size, (end, end_id), simulated = EXPECTED[name]
    path = ensure_tokenizer(spec)
    assert path.name == "tokenizer.json"
    assert path.parent.name.startswith(spec.tokenizer.kind + "-")
    assert ("SIMULATED" in path.parent.name) is simulated
    counter = TokenCounter(path)
    assert counter.vocab_size == size == spec.tokenizer.vocab_size
    assert counter.simulated is simulated is spec.tokenizer.simulated
    assert spec.chat.end_of_turn == end and counter.encode(end) == [end_id]
    for key, value in spec.chat.special_tokens:
        for token in value if isinstance(value, tuple) else (value,):
            assert len(counter.encode(token)) == 1, (key, token)
    config = json.loads((path.parent / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = (REPO / "qwenchat" / "models" / "templates" / spec.chat.template).read_text(
        encoding="utf-8"
    )
    assert config["chat_template"] == template
    assert config["eos_token"] == end
    # Counting by model name uses the same file.
    assert TokenCounter.for_model(name).count(end) == 1
    assert ensure_tokenizer(name) == path  # cached: the same folder again


def test_unknown_kind_is_one_clear_error():
    spec = get_model("qwen2-7b-instruct")
    odd = dataclasses.replace(spec, tokenizer=dataclasses.replace(spec.tokenizer, kind="gpt2-bpe"))
    with pytest.raises(ConfigError, match="no tokenizer builder for kind 'gpt2-bpe'"):
        ensure_tokenizer(odd)


def test_a_spec_whose_size_disagrees_is_refused(tmp_path):
    spec = get_model("llama-v2-7b-chat")
    wrong = dataclasses.replace(
        spec, tokenizer=dataclasses.replace(spec.tokenizer, vocab_size=32001)
    )
    assert build.build_key(wrong) != build.build_key(spec)
    with pytest.raises(ConfigError, match="32000 ids, its spec says 32001"):
        build.build_tokenizer(wrong, tmp_path / "out")
    assert not (tmp_path / "out" / "tokenizer.json").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_key_follows_the_content_of_every_input(name, tmp_path, monkeypatch):
    """A changed template, build code or library builds anew; the same bytes elsewhere do
    not: no number to bump."""
    spec = get_model(name)
    before = build.build_key(spec)
    assert before.startswith(spec.tokenizer.kind + "-")

    templates = tmp_path / "templates"
    shutil.copytree(build.TEMPLATES_DIR, templates)
    monkeypatch.setattr(build, "TEMPLATES_DIR", templates)
    assert build.build_key(spec) == before
    (templates / spec.chat.template).write_text(
        (templates / spec.chat.template).read_text(encoding="utf-8") + " ", encoding="utf-8"
    )
    assert build.build_key(spec) != before
    monkeypatch.undo()

    code = tmp_path / "code"
    shutil.copytree(build.PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(build, "PACKAGE_DIR", code)
    assert build.build_key(spec) == before
    builder = code / BUILDER_FILE[spec.tokenizer.kind]
    builder.write_bytes(builder.read_bytes() + b"\n# changed\n")
    assert build.build_key(spec) != before
    monkeypatch.undo()

    real_version = build._version
    monkeypatch.setattr(
        build, "_version", lambda p: "0.0.1" if p == "tokenizers" else real_version(p)
    )
    assert build.build_key(spec) != before
    monkeypatch.undo()
    assert build.build_key(spec) == before


def test_the_key_follows_the_vocabulary_files(tmp_path, monkeypatch):
    qwen_before = build.build_key("qwen2-7b-instruct")
    standin_before = build.build_key("baichuan2-7b")
    vocab = tmp_path / "qwen.tiktoken"
    vocab.write_bytes(qwen.qwen_tiktoken_path().read_bytes())
    monkeypatch.setattr(qwen, "qwen_tiktoken_path", lambda: vocab)
    assert build.build_key("qwen2-7b-instruct") == qwen_before
    vocab.write_bytes(vocab.read_bytes() + b"\n")
    assert build.build_key("qwen2-7b-instruct") != qwen_before
    assert build.build_key("baichuan2-7b") != standin_before  # built from the same ranks
    monkeypatch.undo()

    llama_before = build.build_key("llama-v2-7b-chat")
    js = tmp_path / "llama-tokenizer.js"
    js.write_bytes(llama2.llama_tokenizer_js_path().read_bytes())
    monkeypatch.setenv(llama2.ENV_OVERRIDE, str(js))
    assert build.build_key("llama-v2-7b-chat") == llama_before
    js.write_bytes(js.read_bytes() + b"\n")
    assert build.build_key("llama-v2-7b-chat") != llama_before


def test_a_failed_build_leaves_nothing_half_done(tmp_path, monkeypatch):
    monkeypatch.setenv("QWENCHAT_CACHE", str(tmp_path / "cache"))
    real = build.build_tokenizer

    def broken(spec, out_dir):
        (Path(out_dir) / "tokenizer.json").write_text("{")
        raise ConfigError("disk full")

    monkeypatch.setattr(build, "build_tokenizer", broken)
    with pytest.raises(ConfigError, match="disk full"):
        ensure_tokenizer("llama-v2-7b-chat")
    root = tmp_path / "cache" / "tokenizers"
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.setattr(build, "build_tokenizer", real)
    path = ensure_tokenizer("llama-v2-7b-chat")
    assert TokenCounter(path).encode("Hello world!") == [15043, 3186, 29991]


_RACE = textwrap.dedent(
    """
    import sys
    import qwenchat.models.tokenizers.build as b

    real = b.build_tokenizer
    def counted(spec, out_dir):
        with open(sys.argv[1], "a") as log:
            log.write("build\\n")
        return real(spec, out_dir)
    b.build_tokenizer = counted
    print(b.ensure_tokenizer(sys.argv[2]))
    """
)


@pytest.mark.slow
def test_two_processes_build_once(tmp_path):
    """Two processes asking at once get the same complete file; it is built only once.
    (Llama 2's build is the quickest; every kind goes through the same store.build_once.)"""
    name = "llama-v2-7b-chat"
    cache = tmp_path / "cache"
    log = tmp_path / "builds.log"
    env = {**os.environ, "QWENCHAT_CACHE": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, str(log), name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1
    built = Path(paths.pop())
    assert built.is_file() and built.parent.parent == cache / "tokenizers"
    assert log.read_text().count("build") == 1
    assert built.read_bytes() == ensure_tokenizer(name).read_bytes()  # same as the shared cache
    assert [p.name for p in built.parent.parent.iterdir() if not p.name.endswith(".lock")] == [
        built.parent.name
    ]


def _entry(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qwenchat.models.tokenizer_build", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("name", ["llama-v2-7b-chat", "baichuan2-7b"])
def test_module_entry_writes_any_model(tmp_path, name):
    cached = ensure_tokenizer(name)
    done = _entry(str(tmp_path / "out"), "--model", name)
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip())
    assert out == tmp_path / "out" / "tokenizer.json"
    assert out.read_bytes() == cached.read_bytes()
    assert (out.parent / "tokenizer_config.json").read_bytes() == (
        cached.parent / "tokenizer_config.json"
    ).read_bytes()
    assert ("SIMULATED" in done.stderr) is get_model(name).tokenizer.simulated


def test_module_entry_bad_input(tmp_path):
    missing = _entry(
        str(tmp_path / "out"), "--model", "llama-v2-7b-chat",
        env={llama2.ENV_OVERRIDE: str(tmp_path / "none.js")},
    )  # fmt: skip
    assert missing.returncode == 1
    lines = missing.stderr.strip().splitlines()
    assert lines[0].startswith("error: Llama 2's vocabulary") and lines[1].startswith(
        "hint: Run `make install`"
    )
    assert "Traceback" not in missing.stderr
    unknown = _entry(str(tmp_path / "out"), "--model", "gpt-5")
    assert unknown.returncode == 2 and "unknown model" in unknown.stderr
    assert _entry(str(tmp_path / "out"), "--model").returncode == 2
