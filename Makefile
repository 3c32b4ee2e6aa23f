# `make demo` and `make test` work on a fresh clone: both create .venv and install
# every distribution of this repository (editable) with its test extras.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DISTS  := . $(wildcard stdlib_handler) $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml $(wildcard stdlib_handler/pyproject.toml) $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(foreach d,$(DISTS),-e '$(d)[test]')
	touch $@

demo: $(STAMP)
	$(VENV)/bin/otel-audit demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_seal.py
	$(PY) benchmarks/bench_handler.py
	$(PY) benchmarks/bench_otlp.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
