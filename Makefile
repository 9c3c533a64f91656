# The commands people expect. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast lint bench bench-distributed chaos browser up down cluster \
        cluster-down cluster-reset clean

$(BIN)/liverec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,train]'
	@touch $@

# The page's chart library and the API docs' files, rebuilt only when the lockfile changes.
VENDOR := web/static/vendor/.built
$(VENDOR): web/assets/package.json web/assets/package-lock.json scripts/build-assets.sh
	scripts/build-assets.sh

setup: $(BIN)/liverec $(VENDOR)  ## virtualenv with liverec and its dev tools; the page's assets

demo: setup                      ## replay synthetic sessions to a live page on :8000
	$(BIN)/liverec demo

browser:                         ## Chromium for the browser tests (Debian package)
	scripts/install-browser.sh

up:                              ## local Kafka (KRaft) and Redis for the integration tests
	deploy/local/services.sh up

down:                            ## stop them
	deploy/local/services.sh down

cluster: setup                   ## Kafka, Redis, N workers (N=2) and a web node on :8000, ready
	deploy/local/cluster.sh up $(or $(N),2)

cluster-down:                    ## stop the workers and the web node
	deploy/local/cluster.sh down

cluster-reset:                   ## delete the cluster's topics and Redis keys (cluster down)
	deploy/local/cluster.sh reset

test: setup browser up           ## the whole suite; browser and Kafka/Redis tests may not skip
	LIVEREC_REQUIRE_BROWSER=1 LIVEREC_REQUIRE_SERVICES=1 $(BIN)/pytest

test-fast: setup                 ## no browser, no services
	$(BIN)/pytest -m "not e2e and not integration and not slow"

lint: setup                      ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy online_models stream producers web evaluation simulation distributed liverec

bench: setup                     ## the benchmarks of docs/benchmarks.md
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/push_latency.py

bench-distributed: setup up      ## the Kafka + Redis benchmarks of docs/benchmarks.md
	$(BIN)/python benchmarks/store_apply.py
	$(BIN)/python benchmarks/worker_throughput.py
	$(BIN)/python benchmarks/push_latency.py --distributed

chaos: setup up                  ## random faults under a steady replay, then the check (MINUTES=30)
	$(BIN)/python benchmarks/chaos.py --minutes $(or $(MINUTES),30)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis web/static/vendor web/assets/node_modules
