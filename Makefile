# shopfloor — the two set-up commands are `make up` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: up test install install-test test-deps lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

## make up: install and run the embedded demo (simulated plant ... dashboard)
up: install
	$(BIN)/shopfloor up

test-deps:
	scripts/install-test-deps.sh

lint: install-test
	$(BIN)/ruff check .

## make test: install everything the tests need, then run the whole suite
test: test-deps install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .shopfloor .pytest_cache .hypothesis
