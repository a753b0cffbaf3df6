# loran-search: `make run` sets up .venv and runs the main job on the embedded defaults;
# `make test` sets up .venv and runs the test suite (what CI runs through .ci/run).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STUDY  ?= studies/sinter_amplitude.yaml
PYTEST_ARGS ?=

.PHONY: setup run test test-slow lint bench clean

setup: $(STAMP)

# torch first and pinned: a range that admits a newer torch makes pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements-assets.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements-assets.txt
	touch $(STAMP)

run: setup
	$(VENV)/bin/loran-search run $(STUDY)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/loran-search bench adapter

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
