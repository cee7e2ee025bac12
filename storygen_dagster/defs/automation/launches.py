"""What the request sensor and the nightly schedule share: validating queued requests into
stories, the tags of request runs, and reconciling request rows with their runs (run ids not
known yet, launches that never happened, runs that ended while nobody was watching)."""

import datetime as dt
import json
import math

import dagster as dg
import sqlalchemy as sa
from pydantic import ValidationError

from storygen_dagster.defs.partitions import (
    RANGE_END,
    RANGE_START,
    STORY_PARTITIONS_NAME,
    contiguous_ranges,
)
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.recovery import recovery_settings
from storygen_dagster.storage import request_outcomes
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage.repository import register_requests

RUN_KEY_TAG = "storygen/run_key"
REQUEST_TAG = "storygen/request"
# A launch with no run after this long never happened (daemon died mid-tick): retry it.
# STORYGEN_REQUEST_LAUNCH_GRACE_S overrides it. A sensor retry asks for the same run key,
# which Dagster launches at most once; a nightly row retried too early could get a sensor
# run beside a late nightly run, so keep it well above the daemon's launch latency.
LAUNCH_GRACE = dt.timedelta(minutes=5)
STEP_FAILURE = "STEP_FAILURE"  # dagster/failure_reason of a run whose steps failed


def request_run_tags(stories: int = 1) -> dict[str, str]:
    """Tags of every run launched for story_requests rows. The request reconciler owns their
    retries (a new attempt with a new run key, counted in `attempts`), so Dagster's run
    retries are off for them: two retry owners could start two runs for one story.
    `dagster/max_runtime` lets run monitoring end a run whose worker died unseen (production:
    the default launcher cannot health-check a STARTED run)."""
    limits = recovery_settings()
    return {
        "dagster/max_retries": "0",
        "dagster/max_runtime": str(limits.request_max_runtime_s * math.ceil(max(stories, 1) / 8)),
    }


def request_runs(
    ordered_keys: list[str], accepted: list[tuple[queue.PendingRequest, str]], per_run: int
) -> tuple[list[dg.RunRequest], list[tuple[int, str, str]]]:
    """Accepted requests as runs of at most `per_run` adjacent stories, and the (request id,
    story id, run key) of each launch. A run of one request keeps the key
    `request-<id>-attempt-<n>`; a chunk's key names its first and last request and a digest
    of every (request, attempt) in it: a re-evaluated tick asks for the same keys, and
    Dagster launches a key once. Requests for the same story share its run."""
    rows_by_story: dict[str, list[queue.PendingRequest]] = {}
    for row, sid in accepted:
        rows_by_story.setdefault(sid, []).append(row)
    run_requests, launches = [], []
    for group in contiguous_ranges(ordered_keys, list(rows_by_story), per_run):
        rows = [row for sid in group for row in rows_by_story[sid]]
        if len(rows) == 1:
            run_key = f"request-{rows[0].id}-attempt-{rows[0].attempts + 1}"
        else:
            digest = content_hash([[r.id, r.attempts + 1] for r in rows])[:10]
            run_key = f"requests-{rows[0].id}-{rows[-1].id}-{digest}"
        tags = {
            RUN_KEY_TAG: run_key,
            REQUEST_TAG: ",".join(str(r.id) for r in rows),
            **request_run_tags(len(group)),
        }
        if len(group) == 1:
            run_requests.append(dg.RunRequest(run_key=run_key, partition_key=group[0], tags=tags))
        else:
            tags.update({RANGE_START: group[0], RANGE_END: group[-1]})
            run_requests.append(dg.RunRequest(run_key=run_key, tags=tags))
        launches += [(row.id, sid, run_key) for sid in group for row in rows_by_story[sid]]
    return run_requests, launches


def format_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
    )


def validate(row: queue.PendingRequest) -> tuple[str, StoryRequest] | str:
    """A queued payload as (story id, request), or the error that rejects it."""
    payload = dict(row.payload) if isinstance(row.payload, dict) else None
    if payload is None:
        return f"payload: expected a JSON object, got {type(row.payload).__name__}"
    if row.story_id and payload.get("story_id") not in (None, row.story_id):
        return f"story_id: payload says {payload['story_id']!r}, row says {row.story_id!r}"
    story_id = row.story_id or payload.get("story_id") or f"req-{row.id}"
    try:
        return story_id, StoryRequest.model_validate({**payload, "story_id": story_id})
    except ValidationError as exc:
        return format_errors(exc)


def accept(
    engine: sa.Engine, rows: list[queue.PendingRequest], by: str
) -> list[tuple[queue.PendingRequest, str]]:
    """Validate queued payloads; store the valid ones as their stories' requests and reject the
    others with their validation error (no partition, no story row). Two transactions for
    any number of rows (a nightly batch is thousands). Returns (row, story id) accepted."""
    accepted, stored, rejects = [], [], []
    for row in rows:
        result = validate(row)
        if isinstance(result, str):
            rejects.append((row.id, row.story_id, result))
        else:
            accepted.append((row, result[0]))
            stored.append(result)
    queue.reject_many(engine, rejects)
    register_requests(engine, stored, by=by)
    return accepted


def reconcile(
    engine: sa.Engine,
    instance: dg.DagsterInstance,
    now: dt.datetime,
    max_attempts: int | None = None,
) -> int:
    """Bring queued / running rows in line with their runs. A row whose run key has a run
    gets the run's id; one whose launch never happened goes back to pending (same attempt).
    A row whose run is over is settled as the run status sensors would (in case they missed
    it, e.g. the daemon died first): succeeded, failed on its own, or — run failed at run
    level, was canceled or vanished — its next attempt within `max_attempts`."""
    fixed = 0
    grace = dt.timedelta(seconds=recovery_settings().launch_grace_s)
    # One lookup per run key, not per row: a nightly chunk's rows share one key.
    by_key: dict[str, list[dg.DagsterRun]] = {}
    for request_id, _sid, run_key, updated_at in queue.unresolved_launches(engine):
        if run_key not in by_key:
            by_key[run_key] = list(
                instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
            )
        runs = by_key[run_key]
        if runs:
            queue.resolve_launch(engine, request_id, runs[0].run_id)
            fixed += 1
        elif now - updated_at > grace:
            queue.resolve_launch(engine, request_id, None)
            fixed += 1
    by_id: dict[str, dg.DagsterRun | None] = {}
    settled: set[str] = set()
    for row in request_outcomes.active_launches(engine):
        if row.run_id not in by_id:
            by_id[row.run_id] = instance.get_run_by_id(row.run_id)
        run = by_id[row.run_id]
        if run is None:
            fixed += request_outcomes.finish_from_stories(
                engine,
                [row.story_id],
                [row.run_id],
                "the run no longer exists",
                run_level=True,
                max_attempts=max_attempts,
            )
        elif run.is_finished and row.run_id not in settled:
            settled.add(row.run_id)  # settles every request of the run at once
            fixed += settle_run(engine, instance, run, None, max_attempts)
    return fixed


def settle_run(
    engine: sa.Engine,
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    message: str | None,
    max_attempts: int | None,
) -> int:
    """The requests of a finished run take its outcome (request_outcomes.finish_from_stories)."""
    story_ids = run_story_ids(run, instance)
    if not story_ids:
        return 0
    ids = queue.launch_ids(run.run_id, run.tags.get(RUN_KEY_TAG))
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return request_outcomes.finish_from_stories(engine, story_ids, ids, None)
    if run.status == dg.DagsterRunStatus.CANCELED:
        error, run_level = message or "the run was canceled", True
    else:
        error = message or "the run failed"
        run_level = run.tags.get("dagster/failure_reason") != STEP_FAILURE
    return request_outcomes.finish_from_stories(
        engine, story_ids, ids, error, run_level=run_level, max_attempts=max_attempts
    )


def run_story_ids(run: dg.DagsterRun, instance: dg.DagsterInstance) -> list[str]:
    """The stories a run covers: its partition, or every key of its partition range."""
    tags = run.tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if not (start and end):
        return []
    keys = list(instance.get_dynamic_partitions(STORY_PARTITIONS_NAME))
    if start not in keys or end not in keys:
        return []
    return keys[keys.index(start) : keys.index(end) + 1]


def cursor_json(max_id: int, ticks: int) -> str:
    return json.dumps({"max_request_id": max_id, "ticks": ticks})


def read_cursor(cursor: str | None) -> dict:
    try:
        return json.loads(cursor) if cursor else {"max_request_id": 0, "ticks": 0}
    except json.JSONDecodeError:
        return {"max_request_id": 0, "ticks": 0}
