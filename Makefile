# Kefu: the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

.PHONY: run test deps venv test-env bench cluster-test bench-cluster clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Run Kefu on its embedded default with the demo tenant (KEFU_PORT, KEFU_DATA_DIR override).
run: venv
	$(VENV)/bin/kefu serve --demo

## Install and start what the tests need (PostgreSQL, Redis, Chromium), then run the whole suite.
test: deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

deps:
	bash .ci/install-system-deps

bench: deps venv
	$(PY) bench/api_isolation.py

## The production topology on this machine (two kefu api, two kefu media, two kefu worker on one
## PostgreSQL and Redis): real calls through it, then faults mid-traffic (docs/scaling.md).
cluster-test: deps venv
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

## Sustained call set-ups through that topology, driven by bench/loadgen.py (docs/cluster-benchmark.md).
bench-cluster: deps venv
	$(PY) bench/cluster_load.py

clean:
	rm -rf $(VENV) .kefu-data .pytest_cache build dist
