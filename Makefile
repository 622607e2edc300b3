# Two commands do all set-up on a fresh machine with only Python 3.11+:
#   make demo   -- create .venv, install gridctl, run the embedded demo
#   make test   -- create .venv, install gridctl with test extras, run the suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridctl demo $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/gridctl migrate lint

clean:
	rm -rf $(VENV) .gridctl .pytest_cache
