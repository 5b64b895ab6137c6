# The README's two commands are `make run` and `make test`; everything else here serves them.
# Both set themselves up on a fresh machine: uv (from PyPI), the locked dependencies, and
# whatever system packages the tests need.

SHELL := /bin/bash
PYTHON ?= python3.11
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: run test bootstrap sync lint typecheck test-engine-alone pytest bench-engine

bootstrap:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || \
		$(PYTHON) -m pip install --user --quiet "uv==$(UV_VERSION)"

sync: bootstrap
	@$(UV) sync --frozen --all-packages --quiet

## Run Fader: for now, evaluate the bundled demo document for a few users.
run: sync
	$(UV) run --frozen fader eval examples/demo.json --contexts examples/demo-contexts.jsonl

## The whole test suite: lint, types, architecture, the engine alone, then everything.
test: sync lint typecheck test-engine-alone pytest

lint:
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck:
	$(UV) run --frozen mypy

# The engine must work with nothing of the server installed: run its tests in a venv that holds
# only fader-engine and the test tools.
test-engine-alone:
	@rm -rf .venv-engine
	@$(UV) venv --quiet .venv-engine
	@VIRTUAL_ENV=.venv-engine $(UV) pip install --quiet ./packages/fader-engine pytest hypothesis gherkin-official jsonschema
	.venv-engine/bin/python -c "import fader_engine, sys; bad=[m for m in sys.modules if m.split('.')[0] in {'fader_server','fastapi','typer','httpx','sqlalchemy'}]; assert not bad, bad"
	cd packages/fader-engine && ../../.venv-engine/bin/python -m pytest -q -p no:cacheprovider -x tests

pytest:
	$(UV) run --frozen pytest -q -n auto

bench-engine:
	$(PYTHON) bench/engine/run.py
