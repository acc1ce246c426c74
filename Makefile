# Customer Management platform: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
NODE_MODULES := emulators/auth/node_modules

.PHONY: help setup run test lint fmt schemas fuzz build bench prereqs clean plan-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

prereqs: ## Check the tools the local suite needs, and say what to install
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: install python3.11")'
	@command -v java >/dev/null || { echo "Java 11+ is needed by the Firestore and Pub/Sub emulators: install openjdk-17-jre-headless" >&2; exit 2; }
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed by the Firebase Auth emulator: install nodejs and npm" >&2; exit 2; }

$(STAMPS)/venv: pyproject.toml | prereqs
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(STAMPS)/npm: emulators/auth/package-lock.json | prereqs
	@mkdir -p $(STAMPS)
	cd emulators/auth && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/contracts-npm: tools/contracts/package-lock.json | prereqs
	@mkdir -p $(STAMPS)
	cd tools/contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(STAMPS)/venv $(STAMPS)/npm $(STAMPS)/contracts-npm ## Create the virtualenv, install the Auth emulator and the contract tools (first time only)

run: setup ## Run the whole platform on the local emulators, with a demo tenant
	@$(PY) -m emulators.suite
	$(PY) -m emulators.run

lint: $(STAMPS)/venv ## ruff and mypy (strict on shared/ and functions/)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMPS)/venv ## Format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint plan-check ## Lint, Terraform checks, then every test (unit, emulator integration, end to end)
	@$(PY) -m emulators.suite
	$(VENV)/bin/pytest -q --ignore=tests/terraform

plan-check: $(STAMPS)/venv ## Terraform checked offline: fmt, locals and module interfaces evaluated, IAM rules, checkov
	@command -v terraform >/dev/null || { echo "terraform 1.6+ is needed: install terraform" >&2; exit 2; }
	terraform fmt -check -recursive terraform
	$(VENV)/bin/pytest -q tests/terraform

schemas: $(STAMPS)/venv ## Regenerate the contracts in schemas/ (event schemas, OpenAPI per API) from the code
	$(PY) -m shared.contracts.schemagen

fuzz: setup ## Schemathesis over every API: boundary cases of every schema and more examples (CMP_FUZZ_EXAMPLES, 25)
	@$(PY) -m emulators.suite
	CMP_FUZZ_EXAMPLES=$${CMP_FUZZ_EXAMPLES:-25} CMP_FUZZ_PHASES=$${CMP_FUZZ_PHASES:-examples,coverage,fuzzing} \
		$(VENV)/bin/pytest -q tests/integration/test_fuzz.py

build: $(STAMPS)/venv ## One deployable source folder per function in build/
	$(PY) -m functions.build

bench: setup ## Measure cold start, latency and throughput against baselines in the same run
	$(PY) -m tests.bench

clean: ## Remove build output and caches (keeps the virtualenv)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
