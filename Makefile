# `make demo` and `make test` create .venv when it is missing and install the project into it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned to the build that lies on this machine's disk (a plain range would pull a
# multi-GB CUDA build); the rest comes from pyproject.toml.
TORCH   ?= torch==2.13.0

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,deep,distributed]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/singularity demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/backtest.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
