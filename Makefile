# Two entry points for a fresh machine: `make run` (the app) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED := $(abspath ../shared)
export SCIKIT_LEARN_DATA ?= $(if $(wildcard $(SHARED)/sklearn_data),$(SHARED)/sklearn_data,)

# The runtime (requirements.txt) and, for the tests only, requirements-test.txt: one stamp each.
$(VENV)/.installed-run: requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

.PHONY: install install-test run test lint bench bench-short bench-forget-me
install: $(VENV)/.installed-run

install-test: $(VENV)/.installed-test

run: install
	$(PY) app.py

test: install-test
	$(PY) -m pytest -q tests

lint: install-test
	$(VENV)/bin/ruff check .

bench: install
	$(PY) -m unlearn_core bench --dataset lfw --methods all --seeds 0,1,2 --retain 40 --budget paper --out docs/bench-lfw.md --json docs/bench-lfw.json

bench-short: install
	$(PY) -m unlearn_core bench --dataset lfw --methods all --seeds 0,1,2 --retain 40 --budget short --out docs/bench-lfw-short.md --json docs/bench-lfw-short.json

bench-forget-me: install
	$(PY) -m unlearn_core bench --dataset lfw --methods projection --seeds 0,1,2 --retain 40 --budget paper --protocols standard,one_shot,gallery_assisted --out docs/bench-lfw-forget-me.md --json docs/bench-lfw-forget-me.json
