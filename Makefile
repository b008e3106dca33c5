# Each target bootstraps what it needs: the Python venv and the pinned EVM toolchain.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAIN_STAMP := chain/node_modules/.installed

.PHONY: test demo bench lint typecheck bootstrap chromium clean

bootstrap: $(STAMP) $(CHAIN_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(CHAIN_STAMP): chain/package.json chain/package-lock.json
	cd chain && npm ci --no-audit --no-fund
	touch $@

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
chromium:
	@command -v chromium >/dev/null || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

lint: bootstrap
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: bootstrap
	$(BIN)/mypy

test: lint typecheck chromium
	$(BIN)/privledger compile
	$(BIN)/pytest

demo: bootstrap
	$(BIN)/privledger demo

bench: bootstrap
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/privledger bench anchor --json
	$(BIN)/privledger bench psi --protocol ecdh --n 65536 --peer openmined-psi --json

clean:
	rm -rf build var $(VENV) chain/node_modules
