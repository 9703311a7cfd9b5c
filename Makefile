# The two front-door commands: `make demo` (the main job) and `make test`.
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install

# uv installs the ~110 packages in ~7 s where pip takes ~70 (2026-12-03, a fresh clone, warm
# wheel caches); pip does it if uv cannot (e.g. no uv wheel for this platform).
$(BIN)/execbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv && $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]' \
		|| $(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/execbench

demo: install
	$(BIN)/execbench demo $(ARGS)

# Two workers (pytest-xdist), one per core: with four, a busy core and the suite's own services,
# a reference service under test got a quarter of a core and melted down (10 s timeouts at
# 30 orders/s, a CI run of 2026-12-02); a module's shared fixture is kept on one worker
# (loadgroup, see tests/conftest.py); the 15 slowest tests are listed at the end of every run.
PYTEST_WORKERS ?= 2

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(ARGS)
