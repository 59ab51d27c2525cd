# support-platform: the two commands a newcomer needs are `make up` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
STACK ?= dev

.PHONY: help venv test lint unit snapshot schema up preview destroy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

# The virtualenv Pulumi.yaml names (runtime option virtualenv: venv): the program, the tests and
# the policy pack's dependencies, reinstalled when a requirements file changes.
$(BIN)/.installed: requirements.txt requirements-dev.txt $(wildcard policies/requirements.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed ## create or refresh the virtualenv

lint: venv ## ruff (lint and format) and mypy on components/ and policies/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy components $(if $(wildcard policies/*.py),policies)

unit: venv ## the pytest suite: mocks, settings, snapshots, policies (no cluster, no Pulumi CLI)
	$(BIN)/python -m pytest -q

test: lint unit ## everything CI runs: lint, then the whole test suite

snapshot: venv ## accept the current per-stack snapshots after an intended change (review the diff)
	$(BIN)/python -m pytest -q tests/test_snapshot.py --snapshot-update

schema: venv ## regenerate schema/stack-config.schema.json from the settings model
	$(BIN)/python scripts/export_schema.py

up: venv ## run the program on the dev stack: renders every manifest to rendered/dev
	scripts/stack.sh up dev

preview: venv ## pulumi preview --diff of STACK=staging|production (no cluster needed)
	scripts/stack.sh preview $(STACK)

destroy: venv ## destroy STACK (dev: empties rendered/dev)
	scripts/stack.sh destroy $(STACK)

clean: ## remove the virtualenv, caches and rendered manifests (not the Pulumi state)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache rendered
