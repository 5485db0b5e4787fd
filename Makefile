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

.PHONY: install install-test chromium run test test-fast lint bench bench-short bench-full bench-forget-me bench-scale bench-privacy bench-attributes tune
install: $(VENV)/.installed-run

install-test: $(VENV)/.installed-test

run: install
	$(PY) app.py

# The browser test drives Debian's chromium: installed here when missing and running as root (CI,
# containers); otherwise the test fails and says how to install it.
BROWSERS := chromium chromium-browser google-chrome
chromium:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium not found and not root: tests/test_browser.py will fail (install: sudo apt-get install -y chromium)"; \
	fi

# The whole suite (the README's test command). test-fast: the unit tier only (no face data, no
# trained model; under a minute on 2 CPU cores), e.g. while editing.
test: install-test chromium
	$(PY) -m pytest -q tests

test-fast: install-test
	$(PY) -m pytest -q -m fast tests

lint: install-test
	$(VENV)/bin/ruff check .

bench: install
	$(PY) -m unlearn_core bench --dataset lfw --methods all --seeds 0,1,2 --retain 40 --budget paper --out docs/bench-lfw.md --json docs/bench-lfw.json

bench-short: install
	$(PY) -m unlearn_core bench --dataset lfw --methods all --seeds 0,1,2 --retain 40 --budget short --out docs/bench-lfw-short.md --json docs/bench-lfw-short.json

# the whole backbone trained (S0's setting) at reduced scale on a CPU: one seed, 300-step caps
bench-full: install
	$(PY) -m unlearn_core bench --dataset lfw --train-from full --seeds 0 --retain 40 --distractors 200 --methods dispersion,random_labeling,salun,boundary_shrink --iterations 300 --protocols standard --out docs/bench-lfw-full.md --json docs/bench-lfw-full.json

bench-forget-me: install
	$(PY) -m unlearn_core bench --dataset lfw --methods projection --seeds 0,1,2 --retain 40 --budget paper --protocols standard,one_shot,gallery_assisted --out docs/bench-lfw-forget-me.md --json docs/bench-lfw-forget-me.json

# The privacy audit (K = 4 reference models per seed) of dispersion, its presets and the strongest baselines, 3 seeds.
bench-privacy: install
	$(PY) -m unlearn_core bench-privacy --dataset lfw --seeds 0,1,2 --retain 40 --out docs/privacy-lfw.md --json docs/privacy-lfw.json

# Ingestion rates and the gallery index at 13k (all of LFW, real), 100k and 1M (synthetic) vectors. One thread each for
# torch and faiss: on a CPU shared with other jobs, two threads per process were slower (MTCNN 0.5 vs 4 img/s).
bench-scale: install-test
	$(PY) -m unlearn_core bench-scale --threads 1 --ray-workers 2 --milvus --sizes 100000,1000000 --out docs/bench-scale.md

# Hyper-parameters of the baselines whose papers give a grid, chosen on a validation split of the training identities.
tune: install
	$(PY) -m unlearn_core tune --methods scrub,unsir,jit,meta_unlearn --seed 0 --out docs/tuning-lfw.md --json docs/tuning-lfw.json

# S3's attribute task: forget `male` with Weight Filtering / Pruning and the baselines, 3 seeds.
bench-attributes: install
	$(PY) -m unlearn_core bench --task attributes --forget-attribute male --dataset lfw --forget 4 --retain 60 --seeds 0,1,2 --methods all --out docs/bench-attributes.md --json docs/bench-attributes.json
