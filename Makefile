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
# In memory (/dev/shm) when it has 4 GiB free: the tests' Dagster instances keep their event
# logs in SQLite, whose commits wait on the disk (4.3 ms a commit here against 0.35 ms in
# memory; two pipeline tests 73.5 s -> 39.6-50.4 s, the same CPU). Else beside the checkout.
TEST_TMP ?= $(shell if [ "$$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt 4194304 ] 2>/dev/null; \
	then echo /dev/shm/storygen-pytest$(subst /,-,$(CURDIR)); else echo $(CURDIR)/.pytest-tmp; fi)
# Three workers (pytest-xdist): most of the suite's time is spent waiting on real processes
# (storygen dev's daemon ticks, run workers booting), not on the CPU. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --basetemp=$(TEST_TMP)

# The unit tier (no database, no server, no process; tests/conftest.py sets the tiers).
test-fast: $(STAMP)
	$(PY) -m pytest -m unit --basetemp=$(TEST_TMP)-fast

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench
