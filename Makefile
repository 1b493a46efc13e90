# fhir-elt — the commands a user types. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export DBT_PROFILES_DIR := profiles
export FHIR_ELT_DUCKDB_PATH ?= warehouse/fhir.duckdb
export FHIR_ELT_LANDING_ROOT ?= landing
DBT := $(BIN)/dbt

DEMO_PATIENTS ?= 1000
DEMO_SEED ?= 42
DEMO_DIR ?= demo_data

.PHONY: help setup demo test test-fast lint docs bench bench-rest bench-bulk bench-dbt reliability clean

help: ## list the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fhir-elt needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip check
	@touch $@

setup: $(INSTALLED) ## create .venv and install fhir-elt with its dev tools

# Demo data is regenerated when missing or older than a day, so freshness checks stay honest
# and a second `make demo` the same day changes nothing.
$(DEMO_DIR)/.generated: $(INSTALLED)
	@if [ -f $@ ] && [ -n "$$(find $@ -mmin -1440)" ]; then exit 0; fi; \
	rm -rf $(DEMO_DIR) && \
	$(BIN)/fhir-elt generate --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED) --out $(DEMO_DIR) --format ndjson && \
	touch $@

demo: $(INSTALLED) ## generate 1,000 synthetic patients, load them, dbt build, freshness, docs
	@$(MAKE) --no-print-directory -B $(DEMO_DIR)/.generated
	$(BIN)/fhir-elt load files $(DEMO_DIR) --source-system demo
	$(DBT) build
	@cp target/run_results.json target/last_build_results.json
	$(DBT) source freshness
	$(DBT) docs generate --quiet
	@$(BIN)/fhir-elt summary

test: $(INSTALLED) ## run every test (unit, integration, end to end)
	$(BIN)/pytest; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$status

test-fast: $(INSTALLED) ## run the unit tests only
	$(BIN)/pytest tests/unit -q

lint: $(INSTALLED) ## ruff on Python, sqlfluff on dbt SQL, workflow schema, pip check
	$(BIN)/ruff check loaders tests bench
	$(BIN)/ruff format --check loaders tests bench
	$(BIN)/sqlfluff lint dbt_project --processes 2
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/pip check

docs: $(INSTALLED) ## build the dbt docs site into target/ (needs a loaded warehouse: make demo)
	$(DBT) docs generate
	@echo "docs: open target/index.html, or run: DBT_PROFILES_DIR=profiles $(DBT) docs serve"

BENCH_RESOURCES ?= 100000

bench: $(INSTALLED) ## load + dbt benchmark vs the DuckDB floor (BENCH_RESOURCES=1000000 for the full run)
	PYTHONPATH=. $(BIN)/python bench/load_bench.py --resources $(BENCH_RESOURCES)

bench-rest: $(INSTALLED) ## time a 10,000-resource REST backfill with and without faults; rate vs budget
	PYTHONPATH=. $(BIN)/python bench/rest_backfill.py

bench-dbt: $(INSTALLED) ## time dbt build after a 1%-changed load against a full build (f/e)
	PYTHONPATH=. $(BIN)/python bench/dbt_incremental.py

bench-bulk: $(INSTALLED) ## time a 100,000-resource Bulk Data export end to end; peak memory
	PYTHONPATH=. $(BIN)/python bench/bulk_export.py

reliability: $(INSTALLED) ## fault matrix, hostile-input corpus and fuzzing, PHI/secret canary scan (tables)
	$(BIN)/python -m tests.reliability

clean: ## remove the warehouse, landing zone, demo data and dbt artefacts (keeps .venv)
	rm -rf warehouse landing $(DEMO_DIR) target logs
