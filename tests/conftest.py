"""Shared fixtures: a fresh PostgreSQL database per test session (the server named by
STORYGEN_DATABASE_URL, else the embedded one), a real Dagster instance, test resources."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.io_managers import io_managers
from storygen_dagster.defs.resources import (
    ImageServiceResource,
    ObjectStoreResource,
    StoryDatabase,
    StoryLLMResource,
)
from storygen_dagster.storage import migrate
from storygen_dagster.storage.db import get_engine, start_embedded_postgres

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
    """Factory: a new empty database on the server; all are dropped at the end."""
    admin = sa.create_engine(
        make_url(pg_server_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )

    def make() -> str:
        name = f"sgtest_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{name}"'))
        return make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)

    def drop(url: str) -> None:
        # Pooled connections of every test would otherwise exhaust max_connections.
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(
                sa.text(f'drop database if exists "{make_url(url).database}" with (force)')
            )

    make.drop = drop
    yield make
    admin.dispose()


@pytest.fixture()
def database_url(make_database):
    url = make_database()
    migrate.upgrade(url)
    yield url
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
        "llm": StoryLLMResource(provider="offline", latency_s=0.0, max_concurrency=8),
        "images": ImageServiceResource(
            provider="offline", latency_s=0.0, width=TEST_WIDTH, height=TEST_HEIGHT
        ),
    }


@pytest.fixture()
def test_defs(resources) -> dg.Definitions:
    return build_definitions(resources)


@pytest.fixture()
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as inst:
        yield inst
