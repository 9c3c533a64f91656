# The commands people expect. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast lint bench browser clean

$(BIN)/liverec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/liverec            ## virtualenv with liverec and its dev tools

demo: setup                      ## replay synthetic sessions to a live page on :8000
	$(BIN)/liverec demo

browser:                         ## Chromium for the browser tests (Debian package)
	scripts/install-browser.sh

test: setup browser              ## the whole suite; browser tests may not skip
	LIVEREC_REQUIRE_BROWSER=1 $(BIN)/pytest

test-fast: setup                 ## unit and property tests only
	$(BIN)/pytest -m "not e2e and not slow"

lint: setup                      ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy online_models stream producers web liverec

bench: setup                     ## the benchmarks of docs/benchmarks.md
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/push_latency.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
