# The two commands of the README, and the pieces they stand on.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Packages are reinstalled only when pyproject.toml changes. The demo needs only the runtime
# dependencies; the tests, the linter and the benchmarks also need the dev extras (pytest,
# Playwright, LightGBM, MLflow ...), which take minutes more to install on a fresh clone.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo test install install-dev services lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

# the dev extras include the runtime dependencies: installing them brings both up to date
$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(RUNTIME) $(DEV)

## The runtime dependencies only (what `make demo` needs).
install: $(RUNTIME)

## The runtime dependencies and the dev extras (what `make test` needs).
install-dev: $(DEV)

## Train the example model, start the server with the dashboard and stream traffic through it.
demo: $(RUNTIME)
	$(BIN)/mlwarden demo

## What the tests talk to: PostgreSQL (started, or a throw-away cluster) and Chromium.
SERVICES := PYTHON=$(BIN)/python TEST_SERVICES_ENV=$(VENV)/test-services.env \
	bash scripts/test-services.sh
services: $(RUNTIME)
	$(SERVICES)

## Make PostgreSQL and Chromium ready, then run the whole test suite on every core
## (pytest-xdist: one worker per core, each test sent to whichever worker is free, but the
## tests of one xdist_group, which walk a shared dashboard in order, on one worker;
## `$(BIN)/python -m pytest -q` alone runs it in one process). test-services.sh writes the
## PostgreSQL server and the Chromium the tests should use to $(VENV)/test-services.env.
## PYTEST_ARGS narrows the run, e.g. make test PYTEST_ARGS='tests/api -m "not slow"'.
PYTEST_ARGS ?=
test: $(DEV)
	$(SERVICES)
	set -a && . $(VENV)/test-services.env && set +a && \
		$(BIN)/python -m pytest -q -n auto --dist loadgroup $(PYTEST_ARGS)

## ruff's checks and format, and mypy on the package (its settings: [tool.mypy] in
## pyproject.toml; strict on the core packages; about 45 s of CPU from a cold cache, a few
## seconds after).
lint: $(DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m mypy

bench: $(DEV)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
