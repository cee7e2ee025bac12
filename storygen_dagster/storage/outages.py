"""Telling a lost database from a failed statement, and living through it: pooled connections
pinged on checkout, an idempotent write tried once more, and a CLI command that ends itself
with one clear error once the database has been gone for the outage grace
(STORYGEN_DB_OUTAGE_GRACE_S). Waiting out an outage on connect is storage/db.py's
`wait_out_outages`, part of every engine."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storygen_dagster.storage.db import (
    CONNECT_TIMEOUT_S,
    app_url,
    console_watch,
    describe_database,
    outage_grace_s,
    release_embedded_handle,
)

log = logging.getLogger("storygen.db")
T = TypeVar("T")
# Exit status of a command that gave up on an unreachable database (EX_TEMPFAIL: try again).
EXIT_DATABASE_UNREACHABLE = 75


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


@contextmanager
def exit_if_database_lost(
    url: str, *, grace_s: float | None = None, every_s: float = 1.0
) -> Iterator[None]:
    """While the block runs, probe the database every `every_s`: when it stops answering, say
    so on stderr ("database unreachable, waiting up to N s") and when it is back ("database
    back after N s"); once it has not answered for `grace_s` (the outage grace), print one
    error line and end the process with
    EXIT_DATABASE_UNREACHABLE. Nothing else ends it in time: each Dagster event write of the
    run waits (or, without our pooled instance, retries for ~11.4 s) before it is dropped,
    the writes queue behind one logging lock, and a batch makes hundreds (measured before
    this watch: 247 s from a killed server to the command's end)."""
    grace = outage_grace_s() if grace_s is None else grace_s
    stop = threading.Event()

    def say(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def watch() -> None:
        last_ok, down = time.monotonic(), False
        while not stop.wait(every_s):
            error = _probe(url)
            now = time.monotonic()
            if error is None:
                if down:
                    say(f"database back after {now - last_ok:.1f} s")
                last_ok, down = now, False
                continue
            if not down:
                down = True
                say(f"database unreachable, waiting up to {grace:.0f} s for it: {error}")
            if now - last_ok >= grace and not stop.is_set():
                sys.stdout.flush()
                where = describe_database(url)
                say(
                    f"Error: the database is unreachable ({where}) for {now - last_ok:.0f}"
                    f" s: {error}. Stopped; stories not reported finished are not complete: run"
                    " the same command again when the database is back (paid provider calls"
                    " are cached)."
                )
                release_embedded_handle()
                os._exit(EXIT_DATABASE_UNREACHABLE)

    watcher = threading.Thread(target=watch, name="storygen-db-watch", daemon=True)
    console_watch.set()
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=every_s + CONNECT_TIMEOUT_S + 1)
        console_watch.clear()
