# Customer Management platform: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
NODE_MODULES := emulators/auth/node_modules

# The emulator tests mostly wait on the emulators, so more workers than cores pay: the workers share
# the Firestore, Pub/Sub, Tasks and Secret Manager emulators, each with a project, an Auth emulator,
# an SMTP sink and a functions host of its own.
TEST_WORKERS ?= 4
BUILD_DIR ?= build

.PHONY: help setup run test test-fast lock lint fmt schemas build bench prereqs prereqs-python clean plan-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

prereqs-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: install python3.11")'

prereqs: prereqs-python ## Check the tools the local suite needs, and say what to install
	@command -v java >/dev/null || { echo "Java 11+ is needed by the Firestore and Pub/Sub emulators: install openjdk-17-jre-headless" >&2; exit 2; }
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed by the Firebase Auth emulator: install nodejs and npm" >&2; exit 2; }

# Installs exactly what requirements/dev.lock pins, every file checked against its hash.
$(STAMPS)/venv: pyproject.toml requirements/dev.lock | prereqs
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--quiet --custom-compile-command "make lock"

lock: $(STAMPS)/venv ## Resolve requirements/*.lock again from pyproject.toml (after changing a dependency)
	$(UV_COMPILE) -o requirements/runtime.lock
	$(UV_COMPILE) --extra dev -o requirements/dev.lock

$(STAMPS)/npm: emulators/auth/package-lock.json | prereqs
	@mkdir -p $(STAMPS)
	cd emulators/auth && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(STAMPS)/venv $(STAMPS)/npm ## Create the virtualenv and install the Auth emulator (first time only)

run: setup ## Run the whole platform on the local emulators, with a demo tenant
	@$(PY) -m emulators.suite
	$(PY) -m emulators.run

lint: $(STAMPS)/venv ## ruff, mypy (strict on shared/, functions/ and workers/) and deptry (imports match pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/deptry .

fmt: $(STAMPS)/venv ## Format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint plan-check ## Lint, Terraform checks, then every test (unit, emulator integration, end to end)
	@$(PY) -m emulators.suite
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal --ignore=tests/terraform

test-fast: $(STAMPS)/venv ## The inner loop: unit tests only (no emulators), in a few seconds
	$(VENV)/bin/pytest -q tests/unit

plan-check: $(STAMPS)/venv ## Terraform checked offline: fmt, locals and module interfaces evaluated, IAM rules, checkov
	@command -v terraform >/dev/null || { echo "terraform 1.6+ is needed: install terraform" >&2; exit 2; }
	terraform fmt -check -recursive terraform
	$(VENV)/bin/pytest -q tests/terraform

schemas: $(STAMPS)/venv ## Regenerate schemas/events and schemas/cloudevent from the pydantic models
	$(PY) -m shared.contracts.schemagen

# Python alone (the standard library): no virtualenv, Java or npm, so a build machine stays small.
build: prereqs-python ## One deployable source folder per function in build/ (needs only Python 3.11+)
	$(PYTHON) -m functions.build --out $(BUILD_DIR)

bench: setup ## Measure cold start, latency and throughput against baselines in the same run
	$(PY) -m tests.bench

clean: ## Remove build output and caches (keeps the virtualenv)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
