# The two front-door commands: `make demo` (the main job) and `make test`.
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install

$(BIN)/execbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/execbench

demo: install
	$(BIN)/execbench demo $(ARGS)

# Four workers (pytest-xdist; the tests mostly wait on services, sleeps and phases, so more
# workers than the 2 cores pay) with a module's shared fixture kept on one worker (loadgroup, see
# tests/conftest.py); the 15 slowest tests are listed at the end of every run, CI's included.
PYTEST_WORKERS ?= 4

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(ARGS)
