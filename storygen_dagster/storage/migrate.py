"""Run the alembic migrations programmatically (first use of a database, tests, CLI)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from storygen_dagster.storage.db import app_url, get_engine

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).with_name("migrations")
# Ours, not `alembic_version`: Dagster's own storage keeps its alembic state in the same database.
VERSION_TABLE = "storygen_alembic_version"
_REVISION = re.compile(r'^(revision|down_revision)\s*(?::[^=]*)?=\s*"([^"]+)"', re.MULTILINE)
_done: set[str] = set()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", app_url(url).replace("%", "%%"))
    return cfg


@cache
def script_heads() -> frozenset[str]:
    """The head revisions of migrations/versions, read from the files' `revision` and
    `down_revision` lines. A down_revision this does not read (a merge's tuple) leaves an
    extra head: the database then never matches, and `upgrade` asks alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text()):
            (revisions if name == "revision" else parents).add(value)
    return frozenset(revisions - parents)


def at_heads(url: str) -> bool:
    """One query instead of alembic's command: importing alembic and loading every revision
    cost each process (CLI, run worker) ~0.25 s of CPU before its first provider call."""
    with get_engine(url).connect() as conn:
        if conn.execute(sa.text("select to_regclass(:t)"), {"t": VERSION_TABLE}).scalar() is None:
            return False
        stamped: set[str] = set(
            conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalars()
        )
        return stamped == script_heads()


def upgrade(url: str, revision: str = "heads") -> None:
    """Idempotent; once per process and URL."""
    if revision == "heads" and (url in _done or at_heads(url)):
        _done.add(url)
        return
    from alembic import command

    with get_engine(url).connect() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    _done.add(url)


def mark_current(url: str) -> None:
    """Record that the database at `url` is already at heads (e.g. a copy of a migrated
    template database): `upgrade` then skips it in this process."""
    _done.add(url)
