"""partitions_10k: with N dynamic partitions and N story rows (4 scenes each), the time of one
tick of the story_request sensor (with `pending` new requests), of `storygen status` (the
click command, in-process), and of the partition listing the UI needs (the partition keys and
the materialized keys of `storybook`). Baseline in the same process: the same three with the
few partitions that exist before the N are added."""

from __future__ import annotations

import time

import dagster as dg
import sqlalchemy as sa
from click.testing import CliRunner

from storygen_dagster.storage import requests as queue
from storygen_dagster.storage.tables import scenes, stories, story_requests

SCENES_PER_STORY = 4
CHUNK = 1000


def seed_stories(engine: sa.Engine, story_ids: list[str]) -> None:
    """Generated-looking story rows with scene texts, bulk-inserted (setup, not measured)."""
    for i in range(0, len(story_ids), CHUNK):
        chunk = story_ids[i : i + CHUNK]
        with engine.begin() as conn:
            conn.execute(
                sa.insert(stories),
                [
                    {
                        "story_id": sid,
                        "request": {"story_id": sid},
                        "title": f"The story of {sid}",
                        "status": "succeeded",
                        "book_uri": f"books/{sid}.html",
                    }
                    for sid in chunk
                ],
            )
            conn.execute(
                sa.insert(scenes),
                [
                    {"story_id": sid, "scene_number": n, "text": f"Scene {n}."}
                    for sid in chunk
                    for n in range(1, SCENES_PER_STORY + 1)
                ],
            )


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def probe(engine: sa.Engine, instance: dg.DagsterInstance, db_url: str, tag: str, pending: int):
    """One sensor tick over `pending` new requests, one `storygen status`, one UI listing."""
    from storygen_dagster.cli import main as cli_main
    from storygen_dagster.defs.automation.sensors import story_request_sensor
    from storygen_dagster.defs.partitions import story_partitions
    from storygen_dagster.defs.resources import StoryDatabase
    from storygen_dagster.settings import get_settings

    for i in range(pending):
        queue.enqueue(
            engine,
            {"age": 4, "child_name": "Ana"},
            story_id=f"{tag}-req-{i:03d}",
            requested_by="bench",
        )
    context = dg.build_sensor_context(
        instance=instance, resources={"db": StoryDatabase(database_url=db_url)}
    )
    sensor_s, result = _timed(lambda: story_request_sensor(context))
    status_s, cli = _timed(lambda: CliRunner().invoke(cli_main, ["status"]))
    keys_s, keys = _timed(lambda: instance.get_dynamic_partitions("stories"))
    mat_s, materialized = _timed(
        lambda: instance.get_materialized_partitions(dg.AssetKey("storybook"))
    )
    # The asset page's partition bar: the status of every partition (materialized / failed /
    # in progress / missing), from Dagster's asset status cache.
    health_s, health = _timed(
        lambda: instance.get_status_by_partition(dg.AssetKey("storybook"), keys, story_partitions)
    )
    # The runs are never launched here: close the rows, so the next probe's tick does not
    # reconcile them (one instance.get_runs per queued row) and measures the partitions alone.
    with engine.begin() as conn:
        conn.execute(
            sa.update(story_requests)
            .where(story_requests.c.story_id.like(f"{tag}-req-%"))
            .values(status="succeeded")
        )
    return {
        "sensor_tick_s": round(sensor_s, 3),
        "status_s": round(status_s, 3),
        "ui_partition_keys_s": round(keys_s, 3),
        "ui_materialized_s": round(mat_s, 3),
        "ui_partition_status_s": round(health_s, 3),
        "partitions": len(keys),
        "materialized": len(materialized),
        "stories": len(cli.output.splitlines()) - 1,  # status prints a header + one per story
        "ok": cli.exit_code == 0
        # The pending requests are adjacent partitions: runs of at most STORYGEN_STORIES_PER_RUN.
        and len(result.run_requests) == -(-pending // get_settings().stories_per_run)
        and len(health or {}) == len(keys),
    }


def measure(
    engine: sa.Engine,
    instance: dg.DagsterInstance,
    db_url: str,
    count: int,
    pending: int,
    materialized: int,
    prefix: str = "p10k",
) -> dict:
    base = probe(engine, instance, db_url, f"{prefix}-base", pending)
    ids = [f"{prefix}-{i:05d}" for i in range(count)]
    seed_stories(engine, ids)
    add_s, _ = _timed(
        lambda: [
            instance.add_dynamic_partitions("stories", ids[i : i + CHUNK])
            for i in range(0, len(ids), CHUNK)
        ]
    )
    # Materializations of the last asset for some partitions, so the UI lookup has events to
    # read (runless reports: one event each, as a run's materialization would store).
    mat_s, _ = _timed(
        lambda: [
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key="storybook", partition=sid)
            )
            for sid in ids[:materialized]
        ]
    )
    big = probe(engine, instance, db_url, f"{prefix}-big", pending)
    ratios = {
        f"{k.removesuffix('_s')}_ratio": round(big[k] / base[k], 1) if base[k] else None
        for k in (
            "sensor_tick_s",
            "status_s",
            "ui_partition_keys_s",
            "ui_materialized_s",
            "ui_partition_status_s",
        )
    }
    return {
        "setup_add_partitions_s": round(add_s, 2),
        "setup_report_materializations_s": round(mat_s, 2),
        "baseline": base,
        "big": big,
        **ratios,
        "ok": base["ok"] and big["ok"] and big["partitions"] >= count,
    }
