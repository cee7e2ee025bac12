"""What the request sensor and the nightly schedule share: validating queued requests into
stories, and reconciling launches whose run id is not known yet."""

import datetime as dt
import json

import dagster as dg
import sqlalchemy as sa
from pydantic import ValidationError

from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage.repository import register_request

RUN_KEY_TAG = "storygen/run_key"
REQUEST_TAG = "storygen/request"
# A launch with no run after this long never happened (daemon died mid-tick): retry it.
LAUNCH_GRACE = dt.timedelta(minutes=5)


def format_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
    )


def accept(engine: sa.Engine, row: queue.PendingRequest, by: str) -> str | None:
    """Validate a queued payload; store it as the story's request and return the story id, or
    reject the row with the validation error (no partition, no story row)."""
    payload = dict(row.payload) if isinstance(row.payload, dict) else None
    if payload is None:
        queue.reject(
            engine,
            row.id,
            row.story_id,
            f"payload: expected a JSON object, got {type(row.payload).__name__}",
        )
        return None
    if row.story_id and payload.get("story_id") not in (None, row.story_id):
        queue.reject(
            engine,
            row.id,
            row.story_id,
            f"story_id: payload says {payload['story_id']!r}, row says {row.story_id!r}",
        )
        return None
    try:
        request = StoryRequest.model_validate(
            {**payload, "story_id": row.story_id or payload.get("story_id") or f"req-{row.id}"}
        )
    except ValidationError as exc:
        queue.reject(engine, row.id, row.story_id, format_errors(exc))
        return None
    register_request(engine, request.story_id, request, by=by)
    return request.story_id


def reconcile(engine: sa.Engine, instance: dg.DagsterInstance, now: dt.datetime) -> int:
    """Queued rows carry their run key until the run exists; fill in the run id, or put the
    row back to pending if the launch never happened."""
    fixed = 0
    for request_id, _sid, run_key, updated_at in queue.unresolved_launches(engine):
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
        if runs:
            queue.resolve_launch(engine, request_id, runs[0].run_id)
            fixed += 1
        elif now - updated_at > LAUNCH_GRACE:
            queue.resolve_launch(engine, request_id, None)
            fixed += 1
    return fixed


def run_story_ids(run: dg.DagsterRun, instance: dg.DagsterInstance) -> list[str]:
    """The stories a run covers: its partition, or every key of its partition range."""
    tags = run.tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if not (start and end):
        return []
    keys = instance.get_dynamic_partitions("stories")
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
