# loran-search: `make run` sets up .venv and runs the main job on the embedded defaults;
# `make test` sets up .venv and runs the test suite (what CI runs through .ci/run).
# The first of python3.12, python3.11, python3 that runs and is 3.11 or 3.12 (a pyenv shim of a
# version that is not selected does not run, so it is skipped); `make run PYTHON=/path/python`.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' \
	>/dev/null 2>&1 && { echo $$p; break; }; done)
# Where pip finds torch: empty = the configured indexes (PyPI's Linux wheel is the CUDA build,
# ~2.5 GB more); set it to PyTorch's CPU wheel index for the CPU build on any Python.
TORCH_INDEX ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STUDY  ?= studies/sinter_amplitude.yaml
PYTEST_ARGS ?=

.PHONY: setup run test test-slow lint bench clean

setup: $(STAMP)

# torch first and pinned: a range that admits a newer torch makes pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements-assets.txt
	@test -x $(PY) || test -n "$(PYTHON)" || { echo "make: no Python 3.11 or 3.12 found \
	(tried python3.12, python3.11, python3); install one or pass PYTHON=/path/to/python3.12" >&2; \
	exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
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
