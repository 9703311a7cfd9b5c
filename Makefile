# The two front-door commands: `make demo` (the main job) and `make test`.
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install

# uv installs the ~110 packages where pip takes ~70 s (2026-12-03, a fresh clone); pip does it if
# uv cannot (e.g. no uv wheel for this platform). --compile-bytecode as pip does: without the
# .pyc files every process compiles what it imports (the service's imports 1.4 -> 3.4 s).
$(BIN)/execbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]' \
		|| $(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/execbench

demo: install
	$(BIN)/execbench demo $(ARGS)

# Two workers (pytest-xdist), one per core: with four, a busy core and the suite's own services,
# a reference service under test got a quarter of a core and melted down (10 s timeouts at
# 30 orders/s, a CI run of 2026-12-02); a module's shared fixture is kept on one worker
# (loadgroup, see tests/conftest.py); the 15 slowest tests are listed at the end of every run.
# Three (2026-12-03, a fresh clone with one core busy) exhausted PostgreSQL's connections: the
# PostgreSQL tests got 500s and 'not reachable' (3 failed, 3 errors, 577 s of tests).
PYTEST_WORKERS ?= 2

# PYTHONDONTWRITEBYTECODE= : this machine's environment sets it, so every process the suite
# starts compiled the project's modules again and every worker re-rewrote the test
# modules' asserts (collection 9.7 -> 4.8 s from the second run on); __pycache__ is git-ignored.
test: install
	$(BIN)/ruff check .
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(ARGS)
