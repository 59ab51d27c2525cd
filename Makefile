# support-platform: the two commands a newcomer needs are `make up` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
STACK ?= dev

.PHONY: help venv policies-venv test lint unit integration checkov e2e cluster-test cluster cluster-down images bench figures snapshot schema up preview destroy pin-images drift clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

# The virtualenv Pulumi.yaml names (runtime option virtualenv: venv): the program, the tests and
# the policy pack's dependencies, rebuilt when a requirements file changes. scripts/stack.sh makes
# the same calls, so no script depends on make having run.
venv: ## create or refresh the virtualenv
	@PYTHON=$(PYTHON) scripts/ensure-venv.sh $(VENV) requirements-dev.txt requirements.txt policies/requirements.txt

# The policy pack's own virtualenv (PulumiPolicy.yaml: virtualenv venv), used when the CLI runs it.
policies-venv:
	@PYTHON=$(PYTHON) scripts/ensure-venv.sh policies/venv policies/requirements.txt

lint: venv ## ruff (lint and format), mypy (components/, policies/, scripts/), workflows, shell scripts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy components policies scripts
	"$$(scripts/go-tool.sh actionlint)" -no-color -oneline
	scripts/system-deps.sh shellcheck=shellcheck
	shellcheck scripts/*.sh scripts/*/*.sh components/data/files/*.sh .ci/run

unit: venv ## the fast loop on both cores: mocks, settings, snapshots, policies (no server or tool started)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not engine and not integration"

# The suites below run on both cores: every server a test starts takes a port the OS picks and a
# directory of its own; the cluster suite keeps each file on one worker (its tests share a control plane).
integration: venv ## tests that start real processes: PostgreSQL, Redis, nginx, PgBouncer, promtool/amtool, the analyzer
	$(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=8 -m "integration and not engine"

# checkov in a virtualenv of its own (requirements-checkov.txt pins its whole tree), on the manifests the
# program renders for every stack; a finding passes only with a waiver and its reason in
# policies/checkov-waivers.yaml (scripts/checkov_gate.py).
# Outside the checkout, keyed by its requirements: a fresh clone (every CI run) reuses it.
CHECKOV_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/support-platform/venvs/checkov
checkov: venv ## checkov on the rendered manifests of dev, staging and production; only waived findings pass
	@PYTHON=$(PYTHON) scripts/ensure-venv.sh $(CHECKOV_VENV) requirements-checkov.txt
	$(BIN)/python scripts/checkov_gate.py --checkov $(CHECKOV_VENV)/bin/checkov

e2e: venv policies-venv ## engine tests: the real CLI on a local backend (builds the pinned engine on first use)
	scripts/engine/ensure-engine.sh >/dev/null
	$(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=12 -m "engine and not cluster" tests/e2e

cluster-test: venv policies-venv ## the real CLI against a throwaway control plane it starts and stops (builds it on first use)
	@# Cold, the binaries take longer to build than a test may wait for a cluster to start.
	scripts/cluster/ensure-cluster.sh >/dev/null
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=12 -m cluster tests/e2e

cluster: ## start a throwaway control plane (kwok) to look around with kubectl; last line: export KUBECONFIG=...
	@scripts/cluster.sh up

cluster-down: ## stop that control plane; no process is left
	@scripts/cluster.sh down

test: lint unit integration checkov e2e cluster-test ## everything CI runs: lint, unit, integration, checkov, engine and cluster suites (builds what they need once)

bench: venv policies-venv ## print median preview times of production (pack, trivial pack, none, floor), per-resource costs, a warm make up
	$(BIN)/python scripts/bench.py

figures: venv ## measure CI cold and warm, make unit and make bench, into docs/performance.md (takes long)
	$(BIN)/python scripts/figures.py --cold --warm --unit --bench --write docs/performance.md

images: venv policies-venv ## image-build engine tests: a private dockerd and registry (installs docker.io on first use)
	$(BIN)/python -m pytest -q -m images tests/e2e

snapshot: venv ## accept the current per-stack snapshots after an intended change (review the diff)
	$(BIN)/python -m pytest -q tests/test_snapshot.py --snapshot-update

schema: venv ## regenerate schema/stack-config.schema.json from the settings model
	$(BIN)/python scripts/export_schema.py

# up, preview and destroy: scripts/stack.sh prepares the virtualenvs and the engine itself.
up: ## run the program on the dev stack: renders every manifest to rendered/dev
	scripts/stack.sh up dev

preview: ## pulumi preview --diff of STACK=staging|production (no cluster needed)
	scripts/stack.sh preview $(STACK)

# Tags in the stack file become repository:tag@sha256:<digest>, as the registry serves them; CHECK=1
# only asks whether every pinned digest (defaults included) is still served.
pin-images: venv ## pin STACK's image tags to their registries' digests (CHECK=1: verify the pinned ones)
	$(BIN)/python scripts/pin_images.py --stack $(STACK) $(if $(CHECK),--check)

drift: venv ## what changed in STACK=staging|production outside Pulumi (team backend: PULUMI_BACKEND_URL)
	$(BIN)/python scripts/drift.py --stack $(STACK)

destroy: ## destroy STACK (dev: empties rendered/dev)
	scripts/stack.sh destroy $(STACK)

clean: ## remove the virtualenv, caches and rendered manifests (not the Pulumi state)
	rm -rf $(VENV) policies/venv .pytest_cache .mypy_cache .ruff_cache rendered
