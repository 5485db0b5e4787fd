# Two entry points for a fresh machine: `make run` (the app) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED := $(abspath ../shared)
export SCIKIT_LEARN_DATA ?= $(if $(wildcard $(SHARED)/sklearn_data),$(SHARED)/sklearn_data,)

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

.PHONY: install run test bench bench-short
install: $(VENV)/.installed

run: install
	$(PY) app.py

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m unlearn_core bench --dataset lfw --methods all --seeds 0,1,2 --retain 40 --budget paper --out docs/bench-lfw.md --json docs/bench-lfw.json

bench-short: install
	$(PY) -m unlearn_core bench --dataset lfw --methods all --seeds 0,1,2 --retain 40 --budget short --out docs/bench-lfw-short.md --json docs/bench-lfw-short.json
