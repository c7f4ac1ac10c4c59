# Defection Warehouse task runner. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The browser test renders the report in Debian's Chromium (make browser installs it).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: install browser demo airflow celery-run test test-fast bench lint format contracts-doc dbt-manifest attribution-report gx-suites roles warehouse-stop clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@echo "==> creating $(VENV) and installing pinned dependencies (first run takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python -m defection_warehouse demo

# Airflow's components as processes of their own, the UI at http://127.0.0.1:8080
airflow: $(STAMP)
	@$(BIN)/python -m defection_warehouse airflow

# one night on the CeleryExecutor, two workers, Redis at CELERY_BROKER_URL
celery-run: $(STAMP)
	@$(BIN)/python -m defection_warehouse celery-run

# Chromium and its driver for the browser test, from apt when missing (as root, or with
# sudo); without apt-get it says so and the browser test is skipped.
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "==> installing chromium and chromium-driver with apt-get"; \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	  else \
	    echo "==> no $(CHROMIUM) and no apt-get: the browser test will be skipped"; \
	  fi; \
	fi

test: $(STAMP) browser
	@$(BIN)/python -m pytest

test-fast: $(STAMP) browser
	@$(BIN)/python -m pytest -m "not slow"

attribution-report: $(STAMP)
	@$(BIN)/python -m defection_warehouse attribution-report

bench: $(STAMP)
	@$(BIN)/python bench/run_bench.py

lint: $(STAMP)
	@$(BIN)/ruff check plugins dags tests bench docker
	@$(BIN)/mypy
	@$(BIN)/pre-commit validate-config .pre-commit-config.yaml
	@$(BIN)/python -m defection_warehouse lint-sql

format: $(STAMP)
	@$(BIN)/ruff check --fix plugins dags tests bench docker

contracts-doc: $(STAMP)
	@$(BIN)/python -m defection_warehouse.sources.contracts > docs/source_contracts.md
	@$(BIN)/python -m defection_warehouse.sources.contracts --dbt-sources

dbt-manifest: $(STAMP)
	@$(BIN)/python -m defection_warehouse dbt parse --quiet

gx-suites: $(STAMP)
	@$(BIN)/python -m defection_warehouse.quality.gate write-suites

roles: $(STAMP)
	@$(BIN)/python -m defection_warehouse setup-roles

warehouse-stop: $(STAMP)
	@$(BIN)/python -m defection_warehouse.embedded stop

clean:
	rm -rf .data $(VENV)
