"""story_request_sensor, run status sensors and nightly_stories on a real instance and a real
database: cursor, run keys, rejection, no duplicates, crash recovery, status lifecycle."""

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from storygen_dagster.defs.automation import launches
from storygen_dagster.defs.automation.schedules import nightly_stories
from storygen_dagster.defs.automation.sensors import (
    story_request_sensor,
    story_run_failed_sensor,
    story_run_started_sensor,
    story_run_succeeded_sensor,
)
from storygen_dagster.defs.partitions import RANGE_END, RANGE_START
from storygen_dagster.storage import requests as queue


def _insert(engine, payload, story_id=None, priority=0):
    return queue.enqueue(engine, payload, story_id=story_id, requested_by="test", priority=priority)


def _rows(engine):
    return {r["id"]: r for r in queue.request_rows(engine)}


def _event(result, kind):
    return next(e for e in result.all_events if e.event_type_value == kind)


def _tick(instance, resources, cursor=None):
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"db": resources["db"]}
    )
    return story_request_sensor(ctx)


def test_sensor_launches_valid_rejects_invalid_and_never_duplicates(
    engine, instance, resources, monkeypatch
):
    monkeypatch.setenv("STORYGEN_STORIES_PER_RUN", "1")  # a run per request (chunks: below)
    good = _insert(engine, {"child_name": "Ana", "age": 4}, story_id="ana-1")
    anon = _insert(engine, {"age": 5, "value_to_teach": "kindness"})
    bad = _insert(engine, {"age": 9, "colour": "red"})
    result = _tick(instance, resources)
    keys = sorted(r.run_key for r in result.run_requests)
    assert keys == [f"request-{good}-attempt-1", f"request-{anon}-attempt-1"]
    assert sorted(r.partition_key for r in result.run_requests) == ["ana-1", f"req-{anon}"]
    [add] = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == ["ana-1", f"req-{anon}"]
    rows = _rows(engine)
    assert rows[bad]["status"] == "rejected"
    assert "age" in rows[bad]["error"] and "colour" in rows[bad]["error"]
    assert rows[bad]["story_id"] is None  # no story, no partition for a rejected request
    for rid in (good, anon):
        assert rows[rid]["status"] == "queued" and rows[rid]["attempts"] == 1
        assert rows[rid]["run_id"].startswith("runkey:request-")
    with engine.connect() as conn:
        stories = conn.execute(sa.text("select story_id from stories order by 1")).scalars().all()
    assert stories == ["ana-1", f"req-{anon}"]
    # Evaluated again (a restart): nothing pending, nothing requested twice.
    again = _tick(instance, resources, cursor=result.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    assert f'"max_request_id": {bad}' in again.cursor


def test_launch_that_never_happened_is_retried_with_the_same_run_key(engine, instance, resources):
    rid = _insert(engine, {"age": 3}, story_id="lost-1")
    first = _tick(instance, resources)
    assert [r.run_key for r in first.run_requests] == [f"request-{rid}-attempt-1"]
    # The daemon died before launching: no run carries the key. After the grace period the
    # row goes back to pending and the next tick asks for the same key (Dagster dedupes it).
    later = dt.datetime.now(dt.UTC) + launches.LAUNCH_GRACE + dt.timedelta(seconds=5)
    assert launches.reconcile(engine, instance, later) == 1
    assert _rows(engine)[rid]["status"] == "pending" and _rows(engine)[rid]["attempts"] == 0
    second = _tick(instance, resources, cursor=first.cursor)
    assert [r.run_key for r in second.run_requests] == [f"request-{rid}-attempt-1"]


def test_run_events_drive_the_request_lifecycle(engine, instance, resources, test_defs):
    rid = _insert(engine, {"age": 5, "scene_count": 3}, story_id="life-1")
    tick = _tick(instance, resources)
    instance.add_dynamic_partitions("stories", ["life-1"])
    [req] = tick.run_requests
    result = test_defs.resolve_job_def("storybook_job").execute_in_process(
        instance=instance, partition_key="life-1", tags=req.tags
    )
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    # The row still holds the run key: the started sensor finds it by the run's key tag.
    assert _rows(engine)[rid]["run_id"] == f"runkey:{req.run_key}"
    started = dg.build_run_status_sensor_context(
        sensor_name="story_run_started_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=_event(result, "PIPELINE_START"),
        resources={"db": resources["db"]},
    )
    story_run_started_sensor(started)
    assert _rows(engine)[rid]["status"] == "running"
    assert _rows(engine)[rid]["run_id"] == result.run_id
    done = dg.build_run_status_sensor_context(
        sensor_name="story_run_succeeded_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=_event(result, "PIPELINE_SUCCESS"),
        resources={"db": resources["db"]},
    )
    story_run_succeeded_sensor(done)
    row = _rows(engine)[rid]
    assert row["status"] == "succeeded" and row["error"] is None


def test_failed_run_marks_request_failed_and_retry_gets_a_new_key(
    engine, instance, resources, test_defs
):
    rid = _insert(engine, {"age": 4}, story_id="fail-1")
    [req] = _tick(instance, resources).run_requests
    instance.add_dynamic_partitions("stories", ["fail-1"])
    # scene_images alone has no upstream yet: the story fails on its own, as it would after
    # a provider outage outlasting the call retries (a step failure: no new attempt).
    job = test_defs.resolve_job_def("storybook_job")
    result = job.execute_in_process(
        instance=instance,
        partition_key="fail-1",
        asset_selection=[dg.AssetKey("scene_images")],
        raise_on_error=False,
        tags=req.tags,
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = _event(result, "PIPELINE_FAILURE")
    ctx = dg.build_run_status_sensor_context(
        sensor_name="story_run_failed_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure,
        resources={"db": resources["db"]},
    ).for_run_failure()
    story_run_failed_sensor(ctx)
    row = _rows(engine)[rid]
    assert row["status"] == "failed" and "scene_images" in row["error"]
    with engine.begin() as conn:  # an operator retries it
        conn.execute(sa.text("update story_requests set status='pending' where id=:i"), {"i": rid})
    retry = _tick(instance, resources)
    assert [r.run_key for r in retry.run_requests] == [f"request-{rid}-attempt-2"]
    assert _rows(engine)[rid]["attempts"] == 2


def test_nightly_schedule_batches_pending_and_retryable_requests(engine, instance, resources):
    ids = [_insert(engine, {"age": 3 + i % 4}, story_id=f"night-{i}") for i in range(5)]
    bad = _insert(engine, {"scene_count": 9})
    with engine.begin() as conn:
        conn.execute(
            sa.text("update story_requests set status='failed', attempts=1 where id=:i"),
            {"i": ids[3]},
        )
        conn.execute(
            sa.text("update story_requests set status='failed', attempts=3 where id=:i"),
            {"i": ids[4]},
        )  # out of attempts (max 3): stays failed
    when = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    # `with`: the context's own instance (opened from the ref on first use) is closed after,
    # as the daemon does; left open it stays Dagster's current defs-state storage.
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"db": resources["db"]}
    ) as ctx:
        requests = nightly_stories(ctx)
        assert len(requests) == 1  # four stories, added together: one range run
        [req] = requests
        assert req.tags[RANGE_START] == "night-0" and req.tags[RANGE_END] == "night-3"
        assert req.run_key == "nightly-20261125T0200-night-0-night-3"
        assert instance.get_dynamic_partitions("stories") == [f"night-{i}" for i in range(4)]
        rows = _rows(engine)
        assert [rows[i]["status"] for i in ids] == ["queued"] * 4 + ["failed"]
        assert rows[ids[3]]["attempts"] == 2 and rows[bad]["status"] == "rejected"
        assert nightly_stories(ctx).skip_message.startswith("no pending")


def test_sensor_launches_requests_in_chunks_that_finish_every_request(
    engine, instance, resources, test_defs, monkeypatch
):
    monkeypatch.setenv("STORYGEN_STORIES_PER_RUN", "3")
    ids = [
        _insert(engine, {"age": 3 + i % 4, "scene_count": 3}, story_id=f"c-{i}") for i in range(7)
    ]
    tick = _tick(instance, resources)
    ranges = [(r.tags.get(RANGE_START), r.tags.get(RANGE_END)) for r in tick.run_requests]
    assert ranges == [("c-0", "c-2"), ("c-3", "c-5"), (None, None)]
    assert tick.run_requests[2].partition_key == "c-6"
    keys = [r.run_key for r in tick.run_requests]
    assert keys[0].startswith(f"requests-{ids[0]}-{ids[2]}-")
    assert keys[2] == f"request-{ids[6]}-attempt-1"
    rows = _rows(engine)
    assert [rows[i]["run_id"] for i in ids] == [f"runkey:{k}" for k in keys for _ in range(3)][:7]
    [add] = tick.dynamic_partitions_requests
    instance.add_dynamic_partitions("stories", list(add.partition_keys))
    job = test_defs.resolve_job_def("storybook_job")
    for req in tick.run_requests:
        where = {"partition_key": req.partition_key} if req.partition_key else {}
        result = job.execute_in_process(instance=instance, tags=req.tags, **where)
        assert result.success
        done = dg.build_run_status_sensor_context(
            sensor_name="story_run_succeeded_sensor",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=_event(result, "PIPELINE_SUCCESS"),
            resources={"db": resources["db"]},
        )
        story_run_succeeded_sensor(done)
    rows = _rows(engine)
    assert [rows[i]["status"] for i in ids] == ["succeeded"] * 7
    books = instance.get_materialized_partitions(dg.AssetKey("storybook"))
    assert books == {f"c-{i}" for i in range(7)}
    assert _tick(instance, resources, cursor=tick.cursor).run_requests == []


def test_a_lost_chunk_launch_asks_again_for_the_same_run_keys(
    engine, instance, resources, monkeypatch
):
    monkeypatch.setenv("STORYGEN_STORIES_PER_RUN", "2")
    for i in range(4):
        _insert(engine, {"age": 4}, story_id=f"lost-{i}")
    first = _tick(instance, resources)
    [add] = first.dynamic_partitions_requests
    instance.add_dynamic_partitions("stories", list(add.partition_keys))
    later = dt.datetime.now(dt.UTC) + launches.LAUNCH_GRACE + dt.timedelta(seconds=5)
    assert launches.reconcile(engine, instance, later) == 4
    second = _tick(instance, resources, cursor=first.cursor)
    assert [r.run_key for r in second.run_requests] == [r.run_key for r in first.run_requests]
    assert [r.tags[RANGE_END] for r in second.run_requests] == ["lost-1", "lost-3"]


def test_nightly_schedule_launches_at_most_stories_per_run(
    engine, instance, resources, monkeypatch
):
    monkeypatch.setenv("STORYGEN_STORIES_PER_RUN", "3")
    for i in range(7):
        _insert(engine, {"age": 4}, story_id=f"n-{i}")
    when = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"db": resources["db"]}
    ) as ctx:
        requests = nightly_stories(ctx)
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [
        ("n-0", "n-2"),
        ("n-3", "n-5"),
        ("n-6", "n-6"),
    ]
    assert len({r.run_key for r in requests}) == 3
    assert {r["status"] for r in _rows(engine).values()} == {"queued"}


def test_enqueue_cli_inserts_a_pending_row(engine, database_url, tmp_path):
    import os

    from tests.test_cli import storygen

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(STORYGEN_DATABASE_URL=database_url, STORYGEN_HOME=str(tmp_path / "home"))
    req = tmp_path / "r.json"
    req.write_text('{"story_id": "queued-1", "age": 4}')
    out = storygen(
        ["request", "--file", str(req), "--enqueue", "--json", "--priority", "5"], env, tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    [row] = queue.request_rows(engine)
    assert row["story_id"] == "queued-1" and row["status"] == "pending" and row["priority"] == 5
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from stories")).scalar() == 0


@pytest.mark.parametrize(
    "name",
    [
        "story_request_sensor",
        "story_run_started_sensor",
        "story_run_succeeded_sensor",
        "story_run_failed_sensor",
    ],
)
def test_definitions_resolve_every_sensor_schedule_and_job(name):
    from storygen_dagster.definitions import defs

    sensor = next(s for s in defs.sensors if s.name == name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test():  # run status sensors resolve against an instance
        dg.Definitions.validate_loadable(defs)
    assert defs.resolve_schedule_def("nightly_stories").cron_schedule == "0 2 * * *"
    assert defs.resolve_job_def("storybook_job").partitions_def.name == "stories"
