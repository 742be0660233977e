# Two commands matter: `make run` (embedded demo) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CIC_HOST ?= 127.0.0.1
CIC_PORT ?= 8080

.PHONY: setup run test lint fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,skypilot]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	CIC_HOST=$(CIC_HOST) CIC_PORT=$(CIC_PORT) $(BIN)/cicfleet serve --demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/gateway_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
