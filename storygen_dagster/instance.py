"""The Dagster instance of the project: dagster-postgres storage on the same database as the
story tables (embedded by default), written to $STORYGEN_HOME/dagster/dagster.yaml."""

from __future__ import annotations

import os
import weakref

import dagster as dg
import yaml

from storygen_dagster.recovery import recovery_settings
from storygen_dagster.settings import Settings
from storygen_dagster.storage.db import dagster_url


def dagster_yaml(database_url: str) -> dict:
    timeouts = recovery_settings()
    return {
        "storage": {"postgres": {"postgres_url": dagster_url(database_url)}},
        "python_logs": {"managed_python_loggers": ["storygen"]},
        "telemetry": {"enabled": False},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": 4},
        },
        # After a hard kill: a run stuck STARTING or CANCELING is ended by the daemon, and
        # pool slots held by a dead run are freed. The default launcher cannot health-check a
        # STARTED run: `storygen dev` ends those at start (recovery.end_orphaned_runs), and
        # request runs carry `dagster/max_runtime`.
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": timeouts.start_timeout_s,
            "cancel_timeout_seconds": timeouts.cancel_timeout_s,
            "max_resume_run_attempts": 0,
            "poll_interval_seconds": timeouts.monitoring_poll_s,
            "free_slots_after_run_end_seconds": timeouts.free_slots_after_s,
        },
        # Run-level failures (crashed worker, start timeout) of runs nobody else owns (UI
        # launches, backfills). Request runs are tagged dagster/max_retries=0: the request
        # reconciler owns their retries (defs/automation/launches.py).
        "run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False},
    }


def prepare_dagster_home(settings: Settings, database_url: str) -> str:
    """Write dagster.yaml (idempotent) and point DAGSTER_HOME at it for this process and its
    children. An explicitly set DAGSTER_HOME is respected."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return home
    path = settings.dagster_home
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(database_url), sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(path)
    return str(path)


# Instances already pooled by this process: the pool is set up once per instance.
_pooled: weakref.WeakSet[dg.DagsterInstance] = weakref.WeakSet()


def pool_storage_connections(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """dagster-postgres opens a new connection for every storage call (NullPool): ~5 ms each,
    several per event, so a 50-story step spent seconds connecting (measured: one story's run
    2.8 s -> 1.1 s with a pool). Give this process's instance a small pool instead, as the
    webserver does for itself. Idempotent; a no-op for other storages.

    Dagster's pools do not pre-ping: after a database restart the first call on each pooled
    connection failed ("server closed the connection unexpectedly"), and an event write that
    hit one was lost. Each checkout is pinged here, so a dead connection is replaced inside
    dagster-postgres's connect retries; and a connect during an outage waits for the server
    (up to the outage grace) where dagster-postgres alone gives up after ~12 s and drops the
    event (a materialization, a run's end)."""
    import sqlalchemy as sa

    from storygen_dagster.storage.db import wait_out_outages
    from storygen_dagster.storage.outages import ping_on_checkout

    if instance not in _pooled:
        instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=8)
        for storage in (
            instance.run_storage,
            instance.event_log_storage,
            instance.schedule_storage,
        ):
            # dagster-postgres storages only; they have no public accessor for their engine.
            engine = getattr(storage, "_engine", None)
            if isinstance(engine, sa.Engine):
                sa.event.listen(engine, "checkout", ping_on_checkout)
                wait_out_outages(engine, quiet=True)
        remember_tables_found(instance.event_log_storage)
        _pooled.add(instance)
    return instance


def remember_tables_found(storage: object) -> None:
    """Answer a storage's `has_table(name)` from memory once it has said True for `name`."""
    asked = getattr(storage, "has_table", None)
    if asked is None:
        return
    found: set[str] = set()

    def has_table(table_name: str) -> bool:
        if table_name in found:
            return True
        if asked(table_name):
            found.add(table_name)
            return True
        return False

    storage.has_table = has_table  # type: ignore[attr-defined]


def get_instance(settings: Settings, database_url: str) -> dg.DagsterInstance:
    prepare_dagster_home(settings, database_url)
    return pool_storage_connections(dg.DagsterInstance.get())
