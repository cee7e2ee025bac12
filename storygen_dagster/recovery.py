"""Recovery after a hard kill: what `storygen dev` does at start, before Dagster's processes.

`storygen dev` owns its instance and its host. A SIGKILL of its process group takes the
webserver, daemon, code server and run workers with it and leaves runs STARTING / STARTED /
CANCELING that no process will ever finish; the queued run coordinator counts them as in
progress and launches nothing else. At start we take the instance's owner lock (a Postgres
advisory lock, released by the server when its holder dies), then end every such run whose
process is gone, so the queue drains and the request reconciler (or Dagster's run retries,
for runs nobody else owns) takes over. Production has no single owner and relies on run
monitoring and `dagster/max_runtime` instead (docs/operations.md, "After a hard kill").
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.settings import get_settings
from storygen_dagster.storage.db import app_url

log = logging.getLogger("storygen.recovery")

# pg_advisory_lock key of "the process that owns this instance" (storygen dev). Any constant
# works as long as nothing else in the database uses it.
OWNER_LOCK_KEY = 0x5709_6E_DE_4B11
RECOVERED_TAG = "storygen/recovered"
# A pid's process must have started before the event that names it (a later one is a reused
# pid); /proc start times are in clock ticks, event timestamps in float seconds.
PID_CLOCK_SLACK_S = 1.0
IN_FLIGHT = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class RecoverySettings:
    """Timeouts of run monitoring and of the request reconciler (STORYGEN_RUN_* and
    STORYGEN_REQUEST_* settings). Defaults are for real use; tests shorten them."""

    monitoring_poll_s: int
    start_timeout_s: int
    cancel_timeout_s: int
    free_slots_after_s: int
    request_max_runtime_s: int
    launch_grace_s: int


def recovery_settings() -> RecoverySettings:
    settings = get_settings()
    return RecoverySettings(
        monitoring_poll_s=settings.run_monitoring_poll_s,
        start_timeout_s=settings.run_start_timeout_s,
        cancel_timeout_s=settings.run_cancel_timeout_s,
        free_slots_after_s=settings.run_free_slots_after_s,
        request_max_runtime_s=settings.request_max_runtime_s,
        launch_grace_s=settings.request_launch_grace_s,
    )


class InstanceBusy(RuntimeError):
    pass


def _try_lock(conn: sa.Connection) -> bool:
    query = sa.text("select pg_try_advisory_lock(:k)")
    return bool(conn.execute(query, {"k": OWNER_LOCK_KEY}).scalar_one())


@contextmanager
def instance_owner(database_url: str, wait_s: float = 15.0) -> Iterator[None]:
    """Hold the instance's owner lock for the life of the block, or raise InstanceBusy.
    The lock lives on its own connection: if this process dies, the server drops it."""
    engine = sa.create_engine(app_url(database_url), poolclass=sa.NullPool)
    conn = engine.connect()
    try:
        deadline = time.monotonic() + wait_s
        # A predecessor killed a moment ago may still hold it until its server backend
        # notices the closed socket: wait a little before giving up.
        while not _try_lock(conn):
            if time.monotonic() > deadline:
                raise InstanceBusy(
                    "another storygen dev is running on this instance (same database); "
                    "stop it first: one daemon per instance"
                )
            time.sleep(0.5)
        conn.commit()  # session-level lock: no transaction left open for hours
        yield
    finally:
        conn.close()
        engine.dispose()


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_started_at(pid: int) -> float | None:
    """When the process `pid` started (epoch seconds), or None if there is no such live
    process (zombies count as gone). Without /proc: 0.0 for any live pid (no reuse check)."""
    if pid <= 0:
        return None
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0.0
        return 0.0
    try:
        raw = stat.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after its closing one.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def run_pids(instance: dg.DagsterInstance, run_id: str) -> dict[int, float]:
    """Every process the run's events name, with the time of the latest event naming it:
    the run worker ("Started process for run (pid: N)" carries it as metadata) and whoever
    emitted the run's own events (an in-process run's CLI, a step process)."""
    pids: dict[int, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        named = [event.pid] if event.pid else []
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        if "pid" in metadata:
            value = getattr(metadata["pid"], "value", metadata["pid"])
            if str(value).isdigit():
                named.append(int(value))
        for pid in named:
            pids[pid] = max(pids.get(pid, 0.0), entry.timestamp)
    return pids


def run_has_live_process(instance: dg.DagsterInstance, run_id: str) -> bool:
    for pid, last_seen in run_pids(instance, run_id).items():
        started = process_started_at(pid)
        if started is not None and started <= last_seen + PID_CLOCK_SLACK_S:
            return True
    return False


def end_orphaned_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """End the runs left in flight by processes that no longer exist: STARTING / STARTED as
    failed (a run-level failure: no `dagster/failure_reason` STEP_FAILURE, so whoever owns the
    run's retries retries it), CANCELING as canceled. Call only while holding
    `instance_owner`: a run being launched right now by a live daemon has no process yet."""
    ended = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        if run_has_live_process(instance, run.run_id):
            continue
        message = (
            f"storygen dev: no process is running this run any more (it was {run.status.value}"
            " when the previous storygen dev died); ended at restart"
        )
        instance.add_run_tags(run.run_id, {RECOVERED_TAG: run.status.value.lower()})
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message)
        else:
            instance.report_run_failed(run, message)
        log.warning(
            "ended orphaned run %s (%s, job %s)",
            run.run_id,
            run.status.value,
            run.job_name,
            extra={"operation": "end_orphaned_run", "run_id": run.run_id},
        )
        ended.append(run)
    return ended
