# whatsapp-handler: `make dev` runs the service locally, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHECKOV_VENV ?= .venv-checkov

.PHONY: install dev test lint fmt typecheck pytest terraform-check bench soak clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[tools,dev]'
	@touch $@

install: $(BIN)/.installed

dev: install
	@$(BIN)/whatsapp-handler dev

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: install
	@$(BIN)/mypy

fmt: install
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

# checkov gets its own virtual environment: in the app's it downgrades `packaging`.
$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check 'checkov>=3.2,<4'
	@touch $@

terraform-check: install $(CHECKOV_VENV)/.installed
	@if command -v terraform >/dev/null; then \
	  TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 terraform fmt -check -recursive terraform; \
	else echo "terraform not installed: skipping terraform fmt"; fi
	@$(CHECKOV_VENV)/bin/checkov --skip-download --framework terraform -d terraform --quiet --compact

pytest: install
	@$(BIN)/pytest

test: lint typecheck terraform-check pytest

bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -q wrk >/dev/null) || echo "wrk missing: throughput not measured"
	@$(BIN)/python -m bench

# Issue 12's soak: SOAK_SECONDS (default 300) of mixed load on the served functions.
soak: install
	@$(BIN)/pytest -m soak tests/soak -q -s

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache
