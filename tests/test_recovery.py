"""Recovery after a hard kill, piece by piece on a real instance and database: runs whose
process is gone are ended (and only those), their requests go to the next attempt (never
beside a live run, never past max_attempts), the owner lock, the instance configs."""

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import EngineEventData  # the worker's "Started process" payload

from storygen_dagster import recovery
from storygen_dagster.defs.automation import launches
from storygen_dagster.defs.automation.sensors import story_request_sensor, story_run_failed_sensor
from storygen_dagster.instance import dagster_yaml
from storygen_dagster.storage import request_outcomes
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage.db import dagster_url

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime.now
S = dg.DagsterRunStatus


def _rows(engine):
    return {r["id"]: r for r in queue.request_rows(engine)}


def _tick(instance, resources):
    ctx = dg.build_sensor_context(instance=instance, resources={"db": resources["db"]})
    return story_request_sensor(ctx)


def _run(instance, status, story_id, tags=None, pid=None, pid_seen_at=None) -> dg.DagsterRun:
    """A run as the daemon leaves it, optionally with its worker's 'Started process' event."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name="storybook_job",
            run_id=str(uuid.uuid4()),
            status=status,
            tags={"dagster/partition": story_id, **(tags or {})},
        )
    )
    if pid is not None:
        event = dg.DagsterEvent(
            event_type_value="ENGINE_EVENT",
            job_name="storybook_job",
            message=f"Started process for run (pid: {pid}).",
            event_specific_data=EngineEventData.in_process(pid),
        )
        instance.report_dagster_event(event, run.run_id, timestamp=pid_seen_at)
    return run


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _queued_request(engine, instance, resources, story_id):
    rid = queue.enqueue(engine, {"age": 4}, story_id=story_id, requested_by="test")
    [req] = _tick(instance, resources).run_requests
    return rid, req


def test_runs_whose_process_is_gone_are_ended_and_live_ones_kept(instance):
    me = os.getpid()
    started_me = recovery.process_started_at(me)
    assert started_me is not None and started_me <= time.time() + 1
    dead = _run(instance, S.STARTED, "a", pid=_dead_pid())
    live = _run(instance, S.STARTED, "b", pid=me)
    # Same pid, but named by an event older than this process: a reused pid, not the worker.
    reused = _run(instance, S.STARTED, "c", pid=me, pid_seen_at=started_me - 600)
    never = _run(instance, S.STARTING, "d")  # launched, no worker ever started
    canceling = _run(instance, S.CANCELING, "e", pid=_dead_pid())
    not_started = _run(instance, S.NOT_STARTED, "f")  # run monitoring's start timeout
    ended = {r.run_id for r in recovery.end_orphaned_runs(instance)}
    assert ended == {dead.run_id, reused.run_id, never.run_id, canceling.run_id}
    status = {r.run_id: instance.get_run_by_id(r.run_id) for r in (dead, live, never, canceling)}
    assert status[dead.run_id].status == S.FAILURE
    assert status[never.run_id].status == S.FAILURE
    assert status[canceling.run_id].status == S.CANCELED
    assert status[live.run_id].status == S.STARTED
    assert instance.get_run_by_id(not_started.run_id).status == S.NOT_STARTED
    # A run-level failure: no STEP_FAILURE reason, so the owner of its retries retries it.
    assert "dagster/failure_reason" not in status[dead.run_id].tags
    assert status[dead.run_id].tags[recovery.RECOVERED_TAG] == "started"
    assert recovery.end_orphaned_runs(instance) == []  # idempotent


def test_orphaned_request_run_goes_to_its_next_attempt_not_a_second_run(
    engine, instance, resources
):
    rid, req = _queued_request(engine, instance, resources, "kill-1")
    assert req.tags["dagster/max_retries"] == "0"  # the reconciler owns request retries
    assert int(req.tags["dagster/max_runtime"]) > 0
    run = _run(instance, S.STARTED, "kill-1", tags=req.tags, pid=_dead_pid())
    launches.reconcile(engine, instance, NOW(dt.UTC), max_attempts=3)
    row = _rows(engine)[rid]
    assert (row["status"], row["run_id"]) == ("queued", run.run_id)  # alive as far as we know
    assert _tick(instance, resources).run_requests == []  # no second run beside it
    [ended] = recovery.end_orphaned_runs(instance)
    failed = instance.get_run_by_id(ended.run_id)
    event = instance.all_logs(ended.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
    story_run_failed_sensor(
        dg.build_run_status_sensor_context(
            sensor_name="story_run_failed_sensor",
            dagster_instance=instance,
            dagster_run=failed,
            dagster_event=event.dagster_event,
            resources={"db": resources["db"]},
        ).for_run_failure()
    )
    row = _rows(engine)[rid]
    assert (row["status"], row["attempts"], row["run_id"]) == ("pending", 1, None)
    assert "no process is running this run" in row["error"]
    [retry] = _tick(instance, resources).run_requests
    assert retry.run_key == f"request-{rid}-attempt-2"
    # The reconciler, seeing the same failed run later, changes nothing.
    assert launches.reconcile(engine, instance, NOW(dt.UTC), max_attempts=3) == 0


def test_reconciler_retries_failed_canceled_and_vanished_runs_within_max_attempts(
    engine, instance, resources, monkeypatch
):
    monkeypatch.setenv("STORYGEN_STORIES_PER_RUN", "1")  # a run key per retried request
    failed_rid, failed_req = _queued_request(engine, instance, resources, "rc-failed")
    canceled_rid, canceled_req = _queued_request(engine, instance, resources, "rc-canceled")
    gone_rid, _ = _queued_request(engine, instance, resources, "rc-gone")
    last_rid, last_req = _queued_request(engine, instance, resources, "rc-last")
    own_rid, own_req = _queued_request(engine, instance, resources, "rc-own")
    ok_rid, ok_req = _queued_request(engine, instance, resources, "rc-ok")
    ok = _run(instance, S.SUCCESS, "rc-ok", tags=ok_req.tags)  # its sensor never ran
    failed = _run(instance, S.FAILURE, "rc-failed", tags=failed_req.tags)
    _run(instance, S.CANCELED, "rc-canceled", tags=canceled_req.tags)
    last = _run(instance, S.FAILURE, "rc-last", tags=last_req.tags)
    own = _run(
        instance,
        S.FAILURE,
        "rc-own",
        tags={**own_req.tags, "dagster/failure_reason": launches.STEP_FAILURE},
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "update story_requests set run_id = 'no-such-run', status = 'running'"
            f" where id = {gone_rid}"
        )
        conn.exec_driver_sql(f"update story_requests set attempts = 3 where id = {last_rid}")
        conn.exec_driver_sql(
            "update stories set status = 'failed', error = 'held: scary' where story_id = 'rc-own'"
        )
        conn.exec_driver_sql("update stories set status = 'succeeded' where story_id = 'rc-ok'")
    launches.reconcile(engine, instance, NOW(dt.UTC), max_attempts=3)
    rows = _rows(engine)
    for rid in (failed_rid, canceled_rid, gone_rid):
        assert (rows[rid]["status"], rows[rid]["attempts"]) == ("pending", 1), rows[rid]
    assert failed.run_id in rows[failed_rid]["error"]
    assert "no longer exists" in rows[gone_rid]["error"]
    assert (rows[last_rid]["status"], rows[last_rid]["run_id"]) == ("failed", last.run_id)
    # A story that failed on its own (a step failure) is not relaunched at once.
    assert (rows[own_rid]["status"], rows[own_rid]["error"]) == ("failed", "held: scary")
    assert rows[own_rid]["run_id"] == own.run_id
    assert (rows[ok_rid]["status"], rows[ok_rid]["run_id"]) == ("succeeded", ok.run_id)
    keys = sorted(r.run_key for r in _tick(instance, resources).run_requests)
    assert keys == sorted(f"request-{i}-attempt-2" for i in (failed_rid, canceled_rid, gone_rid))


def test_a_run_not_launched_for_the_request_never_moves_it(engine, instance, resources):
    rid, req = _queued_request(engine, instance, resources, "ui-1")
    ui_run = _run(instance, S.FAILURE, "ui-1")  # e.g. a UI materialization of the same story
    launches.settle_run(engine, instance, ui_run, "boom", max_attempts=3)
    request_outcomes.mark_running(engine, ["ui-1"], queue.launch_ids(ui_run.run_id, None))
    row = _rows(engine)[rid]
    assert (row["status"], row["run_id"]) == ("queued", f"runkey:{req.run_key}")


def test_one_owner_per_instance(database_url):
    with recovery.instance_owner(database_url):
        with pytest.raises(recovery.InstanceBusy):
            with recovery.instance_owner(database_url, wait_s=0.5):
                pass
    with recovery.instance_owner(database_url, wait_s=0.5):
        pass  # released with its holder


def test_dev_instance_has_run_monitoring_and_retries(tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("STORYGEN_RUN_START_TIMEOUT_S", "45")
    config = dagster_yaml(database_url)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        assert inst.run_monitoring_enabled
        assert inst.run_monitoring_start_timeout_seconds == 45
        assert 0 < inst.run_monitoring_cancel_timeout_seconds <= 300
        assert inst.run_retries_enabled and inst.run_retries_max_retries == 2
        assert not inst.run_retries_retry_on_asset_or_op_failure


def test_production_example_has_run_monitoring_and_retries(tmp_path, database_url, monkeypatch):
    text = (REPO / "dagster.yaml.example").read_text()
    example = yaml.safe_load(text)
    monitoring = example["run_monitoring"]
    assert monitoring["free_slots_after_run_end_seconds"] > 0  # pools + runs killed mid-step
    (tmp_path / "dagster.yaml").write_text(text)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_url(database_url))
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:  # the schema accepts it
        assert inst.run_monitoring_enabled
        assert 0 < inst.run_monitoring_start_timeout_seconds <= 300
        assert 0 < inst.run_monitoring_cancel_timeout_seconds <= 300
        assert inst.run_retries_enabled and inst.run_retries_max_retries > 0
        assert not inst.run_retries_retry_on_asset_or_op_failure
        runs = inst.get_concurrency_config().run_queue_config
        assert runs.max_concurrent_runs == 8 and len(runs.tag_concurrency_limits) == 2
