# From a fresh clone: `make run` starts everything on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The slowest tests are listed at the end of each run: what to look at when the suite grows slow.
PYTEST_ARGS ?= --durations=25
# The suite runs in this many pytest-xdist processes (each with its own scratch databases);
# `make test PYTEST_WORKERS=0` runs it in one.
PYTEST_WORKERS ?= 2
ARGS ?=

.PHONY: run test test-postgres lint typecheck protos system-deps clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/traxo dev $(ARGS)

# System programs some tests drive (Chromium, nginx, Prometheus...): installed when we are root
# with apt-get; elsewhere those tests skip and say how to install them.
system-deps:
	@bash scripts/install-system-deps.sh

test: $(INSTALLED) system-deps
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The same suite on the PostgreSQL at 127.0.0.1:5432 (database `test`); tests that touch no
# database ran already in `make test` and are left out.
test-postgres: $(INSTALLED)
	TRAXO_TEST_DATABASE_URL=$${TRAXO_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
	TRAXO_TEST_ONLY_DATABASE=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(INSTALLED)
	$(BIN)/mypy control_plane agent traxo_protocol

protos: $(INSTALLED)
	$(BIN)/python scripts/gen_protos.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
