# Persona Mint: `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test lint typecheck unit integration constraints contracts clean serve

install: $(VENV)/.installed node_modules/.installed system-deps

system-deps:
	@command -v redis-server >/dev/null || { echo "installing redis-server"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v node >/dev/null || { echo "node/npm are required (apt-get install nodejs npm)"; exit 1; }

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q -c constraints.txt -e '.[gpu,dev,local-llm]'
	@touch $@

# `npm install`, not `npm ci`: the lockfile records only the anvil platform packages the registry
# served when it was made, and `npm ci` refuses a lockfile without every optional platform package.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

demo: install
	$(BIN)/personamint demo

serve: install
	$(BIN)/personamint serve

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider

contracts: install
	$(BIN)/python -m chain.contracts.build

constraints: $(VENV)/.installed
	@echo '# Versions the tests were run with (pip install -c constraints.txt). Regenerate with `make constraints`.' > constraints.txt
	$(BIN)/pip freeze --exclude-editable | grep -v '^persona-mint' | sed 's/+cpu$$//' >> constraints.txt

clean:
	rm -rf $(VENV) node_modules var demo-out
