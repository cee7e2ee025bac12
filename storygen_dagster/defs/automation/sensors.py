"""story_request_sensor turns pending story_requests rows into partitions and runs (at most
STORYGEN_STORIES_PER_RUN stories each); the run status sensors carry each run's outcome back
to the rows."""

import datetime as dt

import dagster as dg

from storygen_dagster.defs.automation.launches import (
    RUN_KEY_TAG,
    accept,
    cursor_json,
    read_cursor,
    reconcile,
    request_runs,
    run_story_ids,
    settle_run,
)
from storygen_dagster.defs.jobs import storybook_job
from storygen_dagster.defs.partitions import (
    STORY_PARTITIONS_NAME,
    missing_partitions,
    story_partitions,
)
from storygen_dagster.defs.resources import StoryDatabase
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import request_outcomes
from storygen_dagster.storage import requests as queue

_settings = get_settings()


@dg.sensor(
    job=storybook_job,
    minimum_interval_seconds=_settings.request_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Pending rows of story_requests → validated stories, partitions and runs.",
)
def story_request_sensor(context: dg.SensorEvaluationContext, db: StoryDatabase):
    engine = db.engine()
    settings = get_settings()
    cursor = read_cursor(context.cursor)
    reconcile(engine, context.instance, dt.datetime.now(dt.UTC), settings.request_max_attempts)
    # Status is the queue, not the cursor alone: a failed request set back to pending (an
    # older id) must be picked up again. The cursor records progress for the UI.
    rows = queue.read_requests(engine, statuses=("pending",), limit=settings.request_batch_size)
    accepted = accept(engine, rows, by="sensor:story_request_sensor")
    to_add = missing_partitions(context.instance, [sid for _, sid in accepted])
    # New partitions are added after the existing ones, in this order: the ranges of the
    # chunked runs are computed on the order the instance will have.
    ordered = [*context.instance.get_dynamic_partitions(STORY_PARTITIONS_NAME), *to_add]
    run_requests, launches = request_runs(ordered, accepted, settings.stories_per_run)
    queue.mark_queued(engine, launches)
    max_id = max([cursor["max_request_id"], *(r.id for r in rows)])
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[story_partitions.build_add_request(to_add)] if to_add else [],
        cursor=cursor_json(max_id, cursor["ticks"] + 1),
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    monitored_jobs=[storybook_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the requests of a started run as running.",
)
def story_run_started_sensor(context: dg.RunStatusSensorContext, db: StoryDatabase):
    run = context.dagster_run
    story_ids = run_story_ids(run, context.instance)
    if story_ids:
        ids = queue.launch_ids(run.run_id, run.tags.get(RUN_KEY_TAG))
        request_outcomes.mark_running(db.engine(), story_ids, ids)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[storybook_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the requests of a finished run succeeded (or failed, per story).",
)
def story_run_succeeded_sensor(context: dg.RunStatusSensorContext, db: StoryDatabase):
    settle_run(db.engine(), context.instance, context.dagster_run, None, None)


@dg.run_failure_sensor(
    monitored_jobs=[storybook_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Failed run: each request fails with its story's error, or goes to its next "
    "attempt if the run itself died (crash, start timeout, orphaned after a hard kill).",
)
def story_run_failed_sensor(context: dg.RunFailureSensorContext, db: StoryDatabase):
    settle_run(
        db.engine(),
        context.instance,
        context.dagster_run,
        context.failure_event.message or "run failed",
        get_settings().request_max_attempts,
    )
