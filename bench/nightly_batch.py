"""A simulated nightly batch: N pending story_requests (10,000 by default) on a Postgres-backed
Dagster instance; then one tick of `nightly_stories` (validate every request into a story,
add the partitions, build the chunked run requests) and one tick of `story_request_sensor`
(STORYGEN_REQUEST_BATCH_SIZE rows) on a second set. Then one run of STORYGEN_STORIES_PER_RUN
stories (offline providers, no latency) for the per-story costs: Dagster event-log rows and
bytes, Postgres growth, and the peak RSS of the process that ran it.

    STORYGEN_DATABASE_URL=postgresql://... python -m bench.nightly_batch --requests 10000"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _db_bytes(engine) -> int:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text("select pg_database_size(current_database())")).scalar())


def _enqueue_bulk(engine, count: int, prefix: str) -> None:
    from storygen_dagster.domain.examples import demo_requests
    from storygen_dagster.storage.tables import story_requests

    payloads = [
        r.model_dump(mode="json", exclude_none=True) | {"story_id": f"{prefix}-{i:06d}"}
        for i, r in enumerate(demo_requests(count))
    ]
    rows = [{"story_id": p["story_id"], "payload": p, "requested_by": "bench"} for p in payloads]
    with engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            conn.execute(story_requests.insert(), rows[i : i + 1000])


def measure(url: str, requests: int, sensor_pending: int, *, ticks_only: bool = False) -> dict:
    import dagster as dg

    from storygen_dagster.defs.automation.schedules import nightly_stories
    from storygen_dagster.defs.automation.sensors import story_request_sensor
    from storygen_dagster.defs.resources import StoryDatabase
    from storygen_dagster.instance import dagster_yaml
    from storygen_dagster.settings import get_settings
    from storygen_dagster.storage.db import get_engine

    home = Path(tempfile.mkdtemp(prefix="storygen-nightly-"))
    (home / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(url)))
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    engine = get_engine(url)
    db = StoryDatabase(database_url=url)
    out: dict = {"requests": requests, "stories_per_run": get_settings().stories_per_run}

    _enqueue_bulk(engine, requests, "night")
    when = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"db": db}
    ) as ctx:
        started = time.perf_counter()
        runs = nightly_stories(ctx)
        out["schedule_tick_s"] = round(time.perf_counter() - started, 2)
    out["runs"] = len(runs)

    _enqueue_bulk(engine, sensor_pending, "sens")
    sctx = dg.build_sensor_context(instance=instance, resources={"db": db})
    started = time.perf_counter()
    result = story_request_sensor(sctx)
    out["sensor_tick_s"] = round(time.perf_counter() - started, 2)
    out["sensor_rows"] = get_settings().request_batch_size
    out["sensor_runs"] = len(result.run_requests)
    if not ticks_only:
        out.update(_one_run(engine, instance, url))
    return out


def _one_run(engine, instance, url: str) -> dict:
    """One chunk of the nightly batch run in process: event-log rows, database growth, RSS."""
    import dagster as dg

    from storygen_dagster.definitions import build_definitions
    from storygen_dagster.pipeline import materialize_stories
    from storygen_dagster.settings import get_settings

    n = get_settings().stories_per_run
    ids = [f"night-{i:06d}" for i in range(n)]
    before = _db_bytes(engine)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    [outcome] = materialize_stories(build_definitions(), instance, ids, console_level="ERROR")
    logs = instance.all_logs(outcome.run_id)
    return {
        "run_ok": outcome.success,
        "event_rows_per_story": round(len(logs) / n, 1),
        "event_bytes_per_story": round(sum(len(dg.serialize_value(e)) for e in logs) / n),
        "db_bytes_per_story": round((_db_bytes(engine) - before) / n),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_run_mib": round(rss_before, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.nightly_batch")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--sensor-pending", type=int, default=500)
    parser.add_argument("--ticks-only", action="store_true", help="no 50-story run after them")
    args = parser.parse_args(argv)
    server = os.environ.get("STORYGEN_DATABASE_URL")
    if not server:
        parser.error("set STORYGEN_DATABASE_URL (a server: the bench makes its own database)")
    from bench.shared_limits import scratch_database

    os.environ.update(
        STORYGEN_HOME=tempfile.mkdtemp(prefix="storygen-nightly-home-"),
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
    )
    with scratch_database(server) as url:
        os.environ["STORYGEN_DATABASE_URL"] = url
        m = measure(url, args.requests, args.sensor_pending, ticks_only=args.ticks_only)
    sys.stdout.write(json.dumps({"figure": "nightly_batch", **m}) + "\n")


if __name__ == "__main__":
    main()
