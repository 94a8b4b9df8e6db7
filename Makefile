# The two commands of the README, and the pieces they stand on.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Packages are reinstalled only when pyproject.toml changes.
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Train the example model, start the server with the dashboard and stream traffic through it.
demo: $(STAMP)
	$(BIN)/mlwarden demo

## Start PostgreSQL and Chromium if needed, then run the whole test suite on every core
## (pytest-xdist: one worker per core, each test sent to whichever worker is free;
## `$(BIN)/python -m pytest -q` alone runs it in one process).
test: $(STAMP)
	bash scripts/test-services.sh
	$(BIN)/python -m pytest -q -n auto --dist load

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
