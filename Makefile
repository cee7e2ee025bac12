# Every target installs what it needs into .venv first (a fresh machine needs only python3).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench dev

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/storygen demo

# A basetemp of our own: pytest prunes old /tmp/pytest-of-<user>/pytest-N dirs, including
# those of another session still running (the embedded Postgres lives in one).
# Three workers (pytest-xdist): most of the suite's time is spent waiting on real processes
# (storygen dev's daemon ticks, run workers booting), not on the CPU. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --basetemp=$(CURDIR)/.pytest-tmp

# The unit tier (no database, no server, no process; tests/conftest.py sets the tiers).
test-fast: $(STAMP)
	$(PY) -m pytest -m unit --basetemp=$(CURDIR)/.pytest-tmp-fast

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench
