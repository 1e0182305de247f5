# FleetMind: `make demo` runs the hub with a simulated fleet; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo check test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[hub,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/fleetmind demo

check: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/ingest.py --broker embedded --json
	$(BIN)/python benchmarks/ingest.py --broker mosquitto --json

clean:
	rm -rf $(VENV) .fleetmind .pytest_cache .mypy_cache .ruff_cache
