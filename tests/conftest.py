"""Shared fixtures and the test tiers.

Databases: the server named by STORYGEN_DATABASE_URL, else the embedded one. Each test
session migrates one template database once; every test that asks for `database_url` gets its
own clone of it (CREATE DATABASE ... TEMPLATE: ~0.15 s instead of ~0.9 s to create and
migrate), dropped after the test. A real Dagster instance, test resources.

Tiers: every test gets exactly one of the markers unit, integration or e2e, set here
(`pytest_collection_modifyitems`), so test files need not say it (see DEVELOPERS.md):
- e2e: real storygen processes (the CLI as a subprocess, `storygen dev`, celery workers, the
  bench) or a database server stopped and killed: `E2E_FIXTURES` and `E2E`;
- integration: in process, against a real Postgres, the HTTP provider fake, moto's S3 or a
  Dagster instance: `INTEGRATION_FIXTURES` and `INTEGRATION`;
- unit: the rest (`make test-fast`). A unit test that starts a process or connects to
  Postgres fails, naming the tier it belongs to."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.io_managers import io_managers
from storygen_dagster.defs.providers import OfflineLLMResource, OfflinePainterResource, WordListOnly
from storygen_dagster.defs.resources import ObjectStoreResource, StoryDatabase
from storygen_dagster.defs.reviewer import OfflinePictureReview
from storygen_dagster.providers.shared_limits import close_shared_limits
from storygen_dagster.storage import migrate
from storygen_dagster.storage.db import get_engine, start_embedded_postgres

# STORYGEN_TEST_CPU=FILE: per-test CPU and wall time, one JSON line per phase.
pytest_plugins = ["tests.cpu_report"]

# Small images keep the suite fast; the demo and e2e tests use the real 1024x768.
TEST_WIDTH, TEST_HEIGHT = 320, 240


def _server_url(tmp_root: Path) -> str:
    url = os.environ.get("STORYGEN_DATABASE_URL")
    return url or start_embedded_postgres(tmp_root)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory) -> str:
    return _server_url(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="session")
def make_database(pg_server_url):
    """Factory: a new database on the server, empty or a copy of `template`; `drop` removes
    one. (Drops in a background thread measured slower: they queue behind the next tests'
    creates and the session then waits for them.)"""
    admin = sa.create_engine(
        make_url(pg_server_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )

    def make(template: str | None = None) -> str:
        name = f"sgtest_{uuid.uuid4().hex[:12]}"
        source = f' template "{template}"' if template else ""
        execute(f'create database "{name}"{source}')
        if template:
            # A test's database need not survive a crash of the server: its commits do not
            # wait for the WAL to reach the disk (the tests that kill a server run their own).
            execute(f'alter database "{name}" set synchronous_commit = off')
        return make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)

    def execute(sql: str) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(sql))

    def drop_now(name: str) -> None:
        execute(f'drop database if exists "{name}" with (force)')

    def drop(url: str) -> None:
        # Pooled connections of every test would otherwise exhaust max_connections.
        get_engine(url).dispose()
        drop_now(make_url(url).database)

    make.execute, make.drop, make.drop_now = execute, drop, drop_now
    yield make
    admin.dispose()


@pytest.fixture(scope="session")
def template_database(make_database) -> str:
    """The name of a database migrated to heads once per session, the source of every test's
    database. CREATE DATABASE ... TEMPLATE refuses a source that has open connections: the
    migration's pooled connection is closed, and the database then takes no connections."""
    url = make_database()
    migrate.upgrade(url)
    get_engine(url).dispose()
    name = make_url(url).database
    make_database.execute(f'alter database "{name}" with allow_connections false')
    yield name
    make_database.drop_now(name)


@pytest.fixture()
def database_url(make_database, template_database):
    """A fresh database at the latest migration, of this test alone."""
    url = make_database(template=template_database)
    migrate.mark_current(url)  # a copy of the migrated template: no alembic run in process
    yield url
    close_shared_limits()  # the provider-limit pools and leak threads on this database
    make_database.drop(url)


@pytest.fixture()
def engine(database_url) -> sa.Engine:
    return get_engine(database_url)


@pytest.fixture()
def object_root(tmp_path) -> Path:
    return tmp_path / "objects"


@pytest.fixture()
def resources(database_url, object_root) -> dict:
    db = StoryDatabase(database_url=database_url)
    objects = ObjectStoreResource(url=str(object_root))
    return {
        "db": db,
        "objects": objects,
        **io_managers(db, objects),
        "llm": OfflineLLMResource(latency_s=0.0, max_concurrency=8),
        "images": OfflinePainterResource(latency_s=0.0, width=TEST_WIDTH, height=TEST_HEIGHT),
        "moderation": WordListOnly(),
        "reviewer": OfflinePictureReview(),
    }


@pytest.fixture()
def test_defs(resources) -> dg.Definitions:
    return build_definitions(resources)


@pytest.fixture()
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as inst:
        yield inst


# -- tiers ------------------------------------------------------------------------------------
TIERS = ("unit", "integration", "e2e")
# Real storygen processes or a server stopped and killed: a test that uses one of these
# fixtures (the environment of a `storygen` subprocess, an embedded server the test stops), or
# a module or module::test named here.
E2E_FIXTURES = {"cli_env", "embedded"}
E2E = {
    "test_backfill_chunks",
    "test_bench_smoke",
    "test_celery",
    "test_cli",
    "test_daily_budget::test_two_processes_stay_within_the_daily_budget",
    "test_db_outage",
    "test_dev_e2e",
    "test_dev_kill",
    "test_providers_cli",
    "test_automation::test_enqueue_cli_inserts_a_pending_row",
    "test_review_dev",
    "test_shared_limits::test_three_workers_share_120_rpm_with_no_429_and_at_least_90_percent",
    "test_review_page::test_reviewer_approves_rejects_and_edits_in_chromium",  # a browser
    "test_model_replies::test_storygen_demo_makes_six_books_against_a_schema_only_host",
    "test_print_books::test_epub_passes_epubcheck",  # a java process (epubcheck)
}
# In process, against a database server, the HTTP provider fake, moto's S3 or a Dagster
# instance: a test that uses one of these fixtures, or is named here.
INTEGRATION_FIXTURES = {"pg_server_url", "instance", "fake", "s3_endpoint"}
INTEGRATION = {
    "test_automation::test_definitions_resolve_every_sensor_schedule_and_job",
    "test_providers_faults::test_the_fake_takes_a_burst_of_connections_and_keeps_them_alive",
}


# Under pytest-xdist (`make test` runs `-n 3 --dist loadgroup`) the tests that run a whole
# `storygen dev` (webserver, daemon, code server, run workers) share one worker: one at a time,
# so two of them never compete for the two cores while they wait on daemon ticks.
DAEMON_MODULES = {"test_dev_e2e", "test_dev_kill", "test_review_dev"}


def _tier(item: pytest.Item) -> str:
    """The highest of a tier marker on the test and the tier of what it does."""
    module = item.module.__name__.rpartition(".")[2] if item.module else ""
    names = {module, f"{module}::{getattr(item, 'originalname', item.name)}"}
    fixtures = set(getattr(item, "fixturenames", ()))
    if names & E2E or fixtures & E2E_FIXTURES:
        found = "e2e"
    elif names & INTEGRATION or fixtures & INTEGRATION_FIXTURES:
        found = "integration"
    else:
        found = "unit"
    return max([found, *(t for t in TIERS if item.get_closest_marker(t))], key=TIERS.index)


def pytest_collection_modifyitems(config, items):
    """One tier per test: a lower tier's marker on the test itself gives way (tests that
    started processes were once marked `integration`)."""
    for item in items:
        tier = _tier(item)
        item.own_markers[:] = [m for m in item.own_markers if m.name not in TIERS]
        item.user_properties.append(("tier", tier))
        if not item.get_closest_marker(tier):
            item.add_marker(tier)
        if item.module and item.module.__name__.rpartition(".")[2] in DAEMON_MODULES:
            item.add_marker(pytest.mark.xdist_group("daemons"))


def _defs_state_storage():
    from dagster._core.storage.defs_state.base import DefsStateStorage

    return DefsStateStorage.get()


def _left_behind(where: str) -> None:
    pytest.fail(
        f"{where} left an entered DagsterInstance behind (Dagster's current defs-state storage "
        "changed): use `with` for instances and build_*_context(...)",
        pytrace=False,
    )


@pytest.fixture(autouse=True)
def _no_dagster_context_left_behind(request):
    """A test leaves Dagster's current defs-state storage as it found it. An instance entered
    and never exited stays there after the test; and one entered inside another's `with` and
    exited only when collected (e.g. the instance a `build_schedule_context(...)` not used
    with `with` opens from the ref) then restores the other, disposed one. Either way a later
    Definitions load in the process fails with "Attempted to resolve undefined DagsterInstance
    weakref". The second kind shows only after a garbage collection, which costs ~0.5 s here:
    `_no_dagster_context_left_behind_in_module` collects once per module."""
    before = _defs_state_storage()
    yield
    if _defs_state_storage() is not before:
        _left_behind(request.node.nodeid)


def pytest_collection_finish(session):
    """What is loaded by now (Dagster, dbt, the project's modules: over a million objects) goes
    to the permanent generation: the per-module collection below and Python's own full
    collections then scan only what the tests create since (a collection of the whole heap
    costs ~0.5 s, several under load). Garbage that exists now is collected first."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True, scope="module")
def _no_dagster_context_left_behind_in_module(request):
    before = _defs_state_storage()
    yield
    gc.collect()
    if _defs_state_storage() is not before:
        _left_behind(f"a test of {request.module.__name__}")


class _NotAUnitTest(Exception):
    pass


# The test pictures are 320x240: at the printed size that is ~27-36 dpi. Runs in process read
# this minimum, so print_preflight passes unless a test asks for print resolution itself
# (tests/test_print_books.py); `storygen` subprocesses get the real default (cli_env drops it).
TEST_PRINT_MIN_DPI = "20"


@pytest.fixture(autouse=True)
def _low_print_resolution_minimum(monkeypatch):
    monkeypatch.setenv("STORYGEN_PRINT_MIN_DPI", TEST_PRINT_MIN_DPI)


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request, monkeypatch):
    """A unit test starts no process and opens no Postgres connection: one that does belongs in
    `E2E` or should use a database fixture (integration)."""
    if request.node.get_closest_marker("e2e") or request.node.get_closest_marker("integration"):
        return
    import psycopg
    import psycopg2

    def refuse(what):
        def refused(*args, **kwargs):
            raise _NotAUnitTest(
                f"{request.node.nodeid} is in the unit tier but {what}: add it to E2E in "
                "tests/conftest.py, or give it a database fixture (integration)"
            )

        return refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process"))
    monkeypatch.setattr(psycopg, "connect", refuse("connects to Postgres"))
    monkeypatch.setattr(psycopg.Connection, "connect", refuse("connects to Postgres"))
    monkeypatch.setattr(psycopg2, "connect", refuse("connects to Postgres"))


def storygen(args, env, cwd, stdin=None, timeout=300) -> subprocess.CompletedProcess:
    """The `storygen` command in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "storygen_dagster", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture()
def cli_env(tmp_path, database_url):
    """The environment for a `storygen` subprocess: none of this shell's STORYGEN_/DAGSTER_
    settings, the test's database and a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(STORYGEN_DATABASE_URL=database_url, STORYGEN_HOME=str(tmp_path / "home"))
    return env


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    from tests.dev_process import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
