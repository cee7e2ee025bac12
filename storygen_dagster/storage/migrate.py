"""Run the alembic migrations programmatically (first use of a database, tests, CLI)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from storygen_dagster.storage.db import app_url, get_engine

_MIGRATIONS = Path(__file__).with_name("migrations")
_done: set[str] = set()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", app_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Idempotent; once per process and URL."""
    if url in _done and revision == "heads":
        return
    with get_engine(url).connect() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    _done.add(url)


def mark_current(url: str) -> None:
    """Record that the database at `url` is already at heads (e.g. a copy of a migrated
    template database): `upgrade` then skips it in this process."""
    _done.add(url)
