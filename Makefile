# Each target bootstraps what it needs: the Python venv from the lock file and the pinned EVM
# toolchain from the npm lock file. Nothing is resolved at install time: `make lock` does that.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAIN_STAMP := chain/node_modules/.installed
UV_HOME := build/uv
UV := $(UV_HOME)/bin/uv
# uv installs into .venv, with the machine's Python (never one it downloads), from uv.lock only,
# compiled to bytecode as it installs: where PYTHONDONTWRITEBYTECODE is set (as on our machines) no
# import writes a .pyc, and every process (a node, each of its API processes, each CLI call) would
# compile its ~1,800 modules (web3, fastapi, sqlalchemy...) again: ~8 s of CPU per node start.
UV_ENV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
SYNC := $(UV_ENV) $(UV) sync --frozen --python $(PYTHON) --all-extras --quiet
# our own sources (installed editable, so not in site-packages) compiled the same way, before the
# tests or the demo start their processes (up-to-date files are skipped); then the protocol
# self-test once, which compiles RR22's numba kernels into their on-disk cache: else every node of
# the first consortium compiles them at once in its own self-test (~5 s of CPU each)
PYC := $(BIN)/python -m compileall -q -j 0 src && $(BIN)/python -m privledger.node.selftest
# what `make deps-latest` runs: every test but the end-to-end ones (consortia of node processes,
# the CLI's demo) and the slow ones
UNIT_TESTS := tests -m "not slow and not browser" --ignore=tests/e2e --ignore=tests/scenarios \
	--ignore=tests/test_cli.py

.PHONY: test demo bench lint typecheck docs bootstrap chromium postgresql clean lock deps-latest

bootstrap: $(STAMP) $(CHAIN_STAMP)

# uv itself comes from PyPI through pip, checked against the hashes in uv-bootstrap.txt.
$(UV): uv-bootstrap.txt
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --quiet --require-hashes --no-deps -r uv-bootstrap.txt
	touch $@

# Two steps, so that the build backend (hatchling, in the lock) is hash-checked like the rest:
# first every locked dependency, then the project itself, built without an isolated build env.
# Then the OpenMined PSI component (plugins/openmined-psi, docs/components.md), built into a wheel
# and installed the way a vendor's component would be; its dependencies are in the lock.
PLUGINS := plugins/openmined-psi
$(STAMP): pyproject.toml uv.lock $(UV) $(foreach p,$(PLUGINS),$(wildcard $(p)/pyproject.toml $(p)/src/*/*.py))
	$(SYNC) --no-install-project
	$(SYNC) --no-build-isolation
	$(UV_ENV) $(UV) pip install --python $(BIN)/python --quiet --no-deps --no-build-isolation \
		--reinstall $(foreach p,$(PLUGINS),./$(p))
	touch $@

$(CHAIN_STAMP): chain/package.json chain/package-lock.json
	cd chain && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Resolve pyproject.toml's ranges again and rewrite uv.lock (the one command that changes it).
lock: $(UV)
	$(UV_ENV) $(UV) lock --python $(PYTHON)

# The newest versions the ranges allow, in a scratch venv, against the unit tests: an upstream
# break shows here before a user meets it. Never used by `make test`.
deps-latest: $(UV) $(CHAIN_STAMP)
	rm -rf build/latest
	$(UV) venv --quiet --python $(PYTHON) build/latest
	$(UV) pip install --quiet --refresh --python build/latest/bin/python -e '.[dev,postgres,fl,bench,cluster]'
	$(UV) pip list --python build/latest/bin/python --format freeze > build/latest/versions.txt
	build/latest/bin/privledger compile
	build/latest/bin/pytest -q -p no:cacheprovider $(UNIT_TESTS)

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
chromium:
	@command -v chromium >/dev/null || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# The `postgres` tests start a throwaway server (tests/pg_server.py) from Debian's PostgreSQL 15
# binaries, run as the package's `postgres` user when the tests run as root.
postgresql:
	@test -x /usr/lib/postgresql/15/bin/postgres || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15; }

lint: bootstrap
	$(BIN)/ruff check src tests benchmarks docs/_hooks plugins
	$(BIN)/ruff format --check src tests benchmarks docs/_hooks plugins
	$(BIN)/deptry src benchmarks

typecheck: bootstrap
	$(BIN)/mypy

# The documentation site (mkdocs.yml) into build/site, strictly: a broken link, a page left out of
# the navigation or a reference that no longer matches the code fails the build.
docs: bootstrap
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck docs chromium postgresql
	@$(PYC)
	$(BIN)/privledger compile
	$(BIN)/pytest

demo: bootstrap
	@$(PYC)
	$(BIN)/privledger demo

bench: bootstrap
	$(BIN)/privledger bench anchor --json
	$(BIN)/privledger bench psi --protocol ecdh --n 65536 --peer openmined-psi --json

clean:
	rm -rf build var $(VENV) chain/node_modules
