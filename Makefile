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

# llama.cpp (extra `local-llm`) compiles from source. Its default, -march=native, takes every
# instruction the build machine's CPU advertises, AMX included, and a VM that advertises AMX
# without enabling it faults on the first token (a general protection fault in libggml-cpu).
# So it is built for x86-64 with AVX2/FMA, which runs anywhere this project does, into a
# wheelhouse of our own keyed by version and flags: pip's wheel cache would hand back a wheel
# built with other flags.
LLAMA_VERSION := $(shell sed -n 's/^llama_cpp_python==//p' constraints.txt)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
WHEELHOUSE := $(HOME)/.cache/personamint/wheels/llama-$(LLAMA_VERSION)-x86-64-avx2

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	@ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_VERSION) for x86-64 + AVX2 (once per machine; ~5-11 min on 2 cores)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python "llama-cpp-python==$(LLAMA_VERSION)" -w $(WHEELHOUSE); }
	$(BIN)/pip install -q -c constraints.txt --find-links $(WHEELHOUSE) --only-binary llama-cpp-python \
	  -e '.[gpu,dev,local-llm]'
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
