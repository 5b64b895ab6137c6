# The README's two commands are `make run` and `make test`; everything else here serves them.
# Both set themselves up on a fresh machine: uv (from PyPI), the locked dependencies, and
# whatever system packages the tests need.

SHELL := /bin/bash
PYTHON ?= python3.11
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
UV_VERSION := 0.13.8
# uv comes from PATH, or is installed into .tools/ (a private venv) on first use.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)

.PHONY: run demo-eval test bootstrap sync system-packages lint typecheck test-engine-alone pytest bench-engine

bootstrap:
	@test -x "$(UV)" || { $(PYTHON) -m venv .tools && \
		.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; }

sync: bootstrap
	@$(UV) sync --frozen --all-packages --quiet

## Run Fader: the server on SQLite in ./data, with the demo project seeded once
## (`make run PORT=8500` for another port).
run: sync
	$(UV) run --frozen fader serve --demo --data-dir data $(if $(PORT),--port $(PORT))

## Evaluate the bundled demo document for the sample users, without a server.
demo-eval: sync
	$(UV) run --frozen fader eval examples/demo.json --contexts examples/demo-contexts.jsonl

## The whole test suite: lint, types, architecture, the engine alone, then everything.
test: sync system-packages lint typecheck test-engine-alone pytest

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work here);
# rollout gate tests query a real Prometheus; the reverse-proxy test runs nginx in front of two
# replicas (deploy/nginx); the PgBouncer test runs replicas through transaction pooling. All come
# from Debian's packages (the tests start their own nginx and pgbouncer, never Debian's services).
SYSTEM_BINARIES := /usr/bin/chromium /usr/bin/prometheus /usr/sbin/nginx /usr/sbin/pgbouncer
system-packages:
	@for binary in $(SYSTEM_BINARIES); do test -x $$binary || missing=1; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium prometheus nginx pgbouncer >/dev/null; \
	fi

lint:
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

typecheck:
	$(UV) run --frozen mypy

# The engine must work with nothing of the server installed: run its tests in a venv that holds
# only fader-engine, its locked dependencies and the locked test tools.
ENGINE_VENV := .venv-engine
test-engine-alone: bootstrap
	@rm -rf $(ENGINE_VENV) && $(UV) venv --quiet $(ENGINE_VENV)
	@$(UV) export --frozen --package fader-engine --no-hashes --no-dev --no-emit-workspace \
		--quiet > $(ENGINE_VENV)/engine-requirements.txt
	@$(UV) export --frozen --only-dev --no-hashes --no-emit-workspace \
		--quiet > $(ENGINE_VENV)/dev-constraints.txt
	@VIRTUAL_ENV=$(ENGINE_VENV) $(UV) pip install --quiet --no-deps \
		-r $(ENGINE_VENV)/engine-requirements.txt ./packages/fader-engine
	@VIRTUAL_ENV=$(ENGINE_VENV) $(UV) pip install --quiet \
		-c $(ENGINE_VENV)/dev-constraints.txt pytest hypothesis gherkin-official
	$(ENGINE_VENV)/bin/python -c "import sys, fader_engine; \
		bad = sorted(m for m in sys.modules if m.split('.')[0] in \
		{'fader_server', 'fader_sdk', 'httpx', 'fastapi', 'sqlalchemy', 'typer'}); \
		assert not bad, bad"
	cd packages/fader-engine && ../../$(ENGINE_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		-W error --strict-markers tests

# The suite starts hundreds of Python processes (`fader serve`, CLI calls, xdist workers); with
# PYTHONDONTWRITEBYTECODE set (some machines set it) each one would compile the server, FastAPI
# and SQLAlchemy from source again, seconds of CPU per process. Tests let Python cache bytecode.
# Under `make test` the engine's tests are left out: `test-engine-alone` has just run them all.
# worksteal: a worker that runs out of tests takes half of the other's queue, so both stay busy
# to the end (tests/conftest.py puts the longest modules first).
pytest:
	env -u PYTHONDONTWRITEBYTECODE $(UV) run --frozen pytest -q -n auto --dist worksteal \
		$(if $(filter test,$(MAKECMDGOALS)),--ignore=packages/fader-engine)

bench-engine:
	$(PYTHON) bench/engine/run.py
