# `make run` and `make test` work on a machine with only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: install run lint test test-fast bench bench-peers server serve clean

install: $(STAMP)

# Re-install only when the dependency list or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/orderly run
	$(BIN)/orderly status

# Strict typing (pyproject.toml's [tool.mypy]) covers the rule, the store, the use cases and the ingest.
TYPED := domain orderly/store orderly/service.py orderly/ingest.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(TYPED)

# Tests run on up to 4 processes (one per core), which take whole groups of tests as they free up: a module's
# tests stay together when they share a module-scoped fixture (tests/conftest.py), the slow tier goes first. The
# suite waits on servers and subprocesses as much as it computes. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto
PYTEST_XDIST = -n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup --no-loadscope-reorder --durations=15
test: lint
	$(BIN)/python -m pytest $(PYTEST_XDIST)

# While editing: every test that starts no Prefect server, `orderly` subprocess or browser, with the property tests
# at a few examples each (tests/tiers.py); about a minute on 2 cores.
test-fast: install
	HYPOTHESIS_PROFILE=fast $(BIN)/python -m pytest $(PYTEST_XDIST) -m "not slow"

# The million-order benchmark (bench/README.md): `make bench BENCH_ARGS="--sizes 100000,300000,1000000"`.
BENCH_ARGS ?= --orders 1000000
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A side environment for the bench's peer (dlt's rest_api -> duckdb at 100k orders): never a dependency of
# Orderly and never part of `make test`; `make bench` measures it when .venv-peers exists. Pinned like ours.
PEERS := .venv-peers
DLT_VERSION := 1.31.0
bench-peers:
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet -c bench/peers-constraints.txt "dlt[duckdb]==$(DLT_VERSION)"

# A local Prefect server: the UI on http://127.0.0.1:4200, its database under $(PREFECT_HOME).
# A run waiting for the shared write slot (flows/write_slot.py) is retried every 5 s instead of Prefect's 30.
PREFECT_PORT ?= 4200
export PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS ?= 5
# No telemetry: offline, Prefect's server logs an ERROR every 10 minutes trying to send it.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
server: install
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# The three deployments (pipeline every ORDERLY_SCHEDULE_SECONDS, Process All, Reset State) against `make server`.
serve: install
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/orderly serve

clean:
	rm -rf $(VENV) $(PEERS) .prefect data/*.duckdb*
