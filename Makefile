# Two commands do all set-up on a fresh machine with only Python 3.11+:
#   make demo   -- create .venv, install gridctl, run the embedded demo
#   make test   -- create .venv, install gridctl with test extras, run ruff and the suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench drills clean

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/gridctl demo $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/gridctl migrate lint

drills: $(VENV)/.installed-dev
	$(BIN)/pytest -m drill tests/drills -s $(ARGS)

clean:
	rm -rf $(VENV) .gridctl .pytest_cache
