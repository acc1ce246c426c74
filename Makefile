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

.PHONY: help setup run test test-fast lock lint fmt schemas fuzz build bench prereqs prereqs-python prereqs-node clean plan-check portal browser

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

prereqs-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: install python3.11")'

prereqs-node:
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed by the Firebase Auth emulator and the portal: install nodejs and npm" >&2; exit 2; }

prereqs: prereqs-python prereqs-node ## Check the tools the local suite needs, and say what to install
	@command -v java >/dev/null || { echo "Java 11+ is needed by the Firestore and Pub/Sub emulators: install openjdk-17-jre-headless" >&2; exit 2; }

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

$(STAMPS)/portal-npm: portal/package-lock.json | prereqs-node
	@mkdir -p $(STAMPS)
	cd portal && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/contracts-npm: tools/contracts/package-lock.json | prereqs-node
	@mkdir -p $(STAMPS)
	cd tools/contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/checkov: | prereqs-python
	@mkdir -p $(STAMPS)
	PYTHON=$(PYTHON) terraform/checkov.sh --install
	@touch $@

setup: $(STAMPS)/venv $(STAMPS)/npm $(STAMPS)/portal-npm $(STAMPS)/contracts-npm $(STAMPS)/checkov ## The virtualenv, the npm packages (Auth emulator, portal, contract tools) and checkov (first time only; make -j4 setup installs them side by side)

portal: $(STAMPS)/portal-npm ## Build the Tenant Admin Portal (type check, Vitest, bundle into functions/portal/static)
	cd portal && npm run --silent typecheck && npm test --silent && npx vite build --logLevel warn
	@gzip -9c functions/portal/static/assets/*.js | wc -c | awk '{printf "  portal JavaScript, gzipped: %.1f KB\n", $$1 / 1024}'

browser: ## The portal's browser tests drive Debian's chromium: install it when missing
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "chromium is missing: installing Debian's chromium package for the portal's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is needed by the portal's browser tests: install it (sudo apt-get install chromium)" >&2; exit 2; \
	  fi; }

run: setup portal ## Run the whole platform on the local emulators, with a demo tenant and the portal
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

test: setup lint plan-check portal browser ## Lint, Terraform checks, the portal's build, then every test (unit, emulator integration, end to end, browser)
	@$(PY) -m emulators.suite
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal --ignore=tests/terraform

test-fast: $(STAMPS)/venv ## The inner loop: unit tests only (no emulators), in a few seconds
	$(VENV)/bin/pytest -q tests/unit

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

# Python alone (the standard library): no virtualenv, Java or npm, so a build machine stays small. The
# portal's function ships the assets `make portal` built (the pipeline builds them in a Node step first).
build: prereqs-python ## One deployable source folder per function in build/ (needs only Python 3.11+; run make portal first)
	$(PYTHON) -m functions.build --out $(BUILD_DIR)

bench: setup portal ## Measure cold start, latency and throughput against baselines in the same run
	$(PY) -m tests.bench

clean: ## Remove build output and caches (keeps the virtualenv)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
