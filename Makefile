# Two commands do all set-up on a fresh machine with only Python 3.11+ and network access
# to PyPI:
#   make demo   -- build .venv from uv.lock, run the embedded demo
#   make test   -- build .venv from uv.lock with the test and dev extras, run ruff and the suite
# Both install exactly what uv.lock says (hashes checked), so a new release of anything on
# PyPI cannot change what runs here. `make lock` refreshes the lock (docs/DEVELOPING.md).
PYTHON ?= python3
VENV ?= .venv
# uv itself, pinned with hashes in requirements/uv.txt, lives in a venv of its own: `uv sync`
# makes $(VENV) hold exactly the lock, so it would remove a uv installed there.
TOOLS ?= .tools
BIN := $(VENV)/bin
UV := $(TOOLS)/bin/uv

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

.PHONY: demo test test-pythons lint lock lock-check bench drills clean

$(UV): requirements/uv.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --isolated --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	touch $@

# --locked: refuse to run when pyproject.toml and uv.lock disagree (run `make lock`).
$(VENV)/.installed-run: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked
	touch $@

$(VENV)/.installed-dev: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --extra dev
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/gridctl demo $(ARGS)

test: $(VENV)/.installed-dev lock-check
	$(BIN)/ruff check .
	$(BIN)/pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/gridctl migrate lint

# Re-resolve every dependency within pyproject.toml's ranges and rewrite uv.lock and the
# exported requirements/runtime.txt (the Docker image installs from it).
lock: | $(UV)
	$(UV) lock --upgrade
	$(UV) export --quiet --frozen --no-dev --no-emit-project --no-header \
		--output-file requirements/runtime.txt

# Fails when pyproject.toml and uv.lock disagree, or requirements/runtime.txt is stale.
lock-check: | $(UV)
	$(UV) lock --quiet --check
	$(UV) export --quiet --frozen --no-dev --no-emit-project --no-header \
		--output-file $(TOOLS)/runtime.txt
	@cmp -s $(TOOLS)/runtime.txt requirements/runtime.txt \
		|| { echo "requirements/runtime.txt is stale: run make lock" >&2; exit 1; }

# The checked-in generated files must come out the same on Python 3.11 to 3.13.
test-pythons: | $(UV)
	scripts/test-pythons $(UV) $(abspath $(TOOLS))

# The RisingWave conformance harness (tests/conformance): RisingWave v3.0.x and Kafka from
# compose.yaml, the migrations applied verbatim, the golden scenarios replayed through Kafka
# and diffed against the embedded engine. Needs Docker; without it, says so and skips.
RW_ENV := RISINGWAVE_URL=postgresql://root@127.0.0.1:4566/dev KAFKA_BOOTSTRAP=127.0.0.1:29092 \
	RISINGWAVE_KAFKA_BOOTSTRAP=kafka:9092
test-risingwave: $(VENV)/.installed-dev
	@if docker info >/dev/null 2>&1; then \
		docker compose up -d --wait risingwave kafka kafka-init && \
		$(RW_ENV) $(BIN)/pytest -m risingwave tests/conformance \
			tests/pipeline/test_golden_risingwave.py -rs $(ARGS); \
	else \
		echo "test-risingwave: SKIPPED: no Docker daemon answers" \
			"(RisingWave v3.0.2 and Kafka run from compose.yaml)"; \
		$(BIN)/pytest -m risingwave tests/conformance -rs -q; \
	fi

drills: $(VENV)/.installed-dev
	$(BIN)/pytest -m drill tests/drills -s $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .gridctl .pytest_cache
