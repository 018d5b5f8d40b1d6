# Everything runs in ./.venv, made from Python 3.11 (or python3) on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## train the iris example, save it, list it, build, run, serve and query it
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## the whole suite, slow end-to-end and container tests included (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## the quick inner loop: no slow or container tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not container" $(PYTEST_ARGS)

bench: $(STAMP)
	bash scripts/setup-bench.sh
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/serve.py --no-fail
	$(BIN)/python benchmarks/http_protocol.py --no-fail
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/run_offline.py

lint: $(STAMP)
	$(BIN)/ruff check mlpack tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
