# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(shell command -v $(PYTHON))
# Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set, every `byob`
# start would otherwise recompile its dependencies (about a second per command).
export UV_COMPILE_BYTECODE := 1

.PHONY: demo test bench load lint setup setup-test setup-bench clean
BENCH_ARGS ?= --floor-inline-tenant
# One pytest worker more than cores: much of the suite waits on subprocesses and servers.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)')

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

setup: $(UV)  ## the runtime virtualenv, from the lock file
	$(UV) sync --frozen --quiet
	$(VENV)/bin/python -m compileall -q src

setup-test: $(UV)
	$(UV) sync --frozen --quiet --extra test
	$(VENV)/bin/python -m compileall -q src

setup-bench: $(UV)
	$(UV) sync --frozen --quiet --extra test --extra bench
	$(VENV)/bin/python -m compileall -q src

demo: setup  ## the whole product end to end, embedded
	$(VENV)/bin/byob demo

test: setup-test  ## PostgreSQL + the AWS emulator + the whole suite, in parallel
	scripts/ensure-chromium
	scripts/with-postgres $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

bench: setup-bench  ## transfer throughput and memory against floors and dlt; queue throughput
	scripts/with-postgres bash -c '$(VENV)/bin/python bench/transfer_bench.py $(BENCH_ARGS) && $(VENV)/bin/python bench/queue_bench.py $(QUEUE_BENCH_ARGS) && $(VENV)/bin/python bench/import_bench.py $(IMPORT_BENCH_ARGS)'

load: setup-bench  ## 4,000 requests from 20 clients against `byob serve` over 10,000 connections
	scripts/with-postgres $(VENV)/bin/python bench/load_bench.py $(LOAD_ARGS)


lint: setup-test  ## ruff (lint and format) on the whole tree, mypy --strict on all of src
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(TOOLS) .byob artifacts
