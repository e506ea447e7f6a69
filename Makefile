# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
INSTALLED := $(VENV)/.installed
DEV_INSTALLED := $(VENV)/.dev-installed
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast check bench bench-full clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e .
	touch $@

$(DEV_INSTALLED): $(INSTALLED)
	$(PIP) install -q -e '.[dev]'
	touch $@

demo: $(INSTALLED)
	$(VENV)/bin/dreamcurate demo

test: $(DEV_INSTALLED)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q

# the fast subset: everything but the tests marked slow (real training runs, multi-process runs)
test-fast: $(DEV_INSTALLED)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q -m "not slow"

check: $(DEV_INSTALLED)
	$(PY) -m ruff format --check curator trainer tui tests bench
	$(PY) -m ruff check curator trainer tui tests bench
	$(PY) -m mypy
	$(PY) -m pytest -q -n 0 tests/test_layers.py

bench: $(DEV_INSTALLED)
	$(PIP) install -q -e '.[dev,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
