# `make run` and `make test` work on a machine with only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: install run test bench server serve clean

install: $(STAMP)

# Re-install only when the dependency list or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/orderly run
	$(BIN)/orderly status

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .prefect data/*.duckdb*
