"""The run side of a request's life: its rows turn `running` when their run starts and take
their stories' outcomes when it ends (a budget stop keeps its attempt; a run-level failure goes
to the next attempt). The queue itself (enqueue, read, launch) is storage/requests.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from storygen_dagster.storage.daily_budget import is_budget_stop
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.requests import ATTEMPT_GIVEN_BACK, NOW, RUN_KEY_PREFIX
from storygen_dagster.storage.tables import stories, story_requests


def mark_running(engine: sa.Engine, story_ids: list[str], run_ids: list[str]) -> int:
    """Only the rows this run was launched for (`launch_ids`): a UI run of the same story,
    or an older attempt's run, never moves a request."""
    with db_op("requests_running", story_id=",".join(story_ids)) as op, engine.begin() as conn:
        op.rows = conn.execute(
            story_requests.update()
            .where(
                story_requests.c.story_id.in_(story_ids),
                story_requests.c.status == "queued",
                story_requests.c.run_id.in_(run_ids),
            )
            .values(status="running", run_id=run_ids[0], updated_at=NOW)
        ).rowcount
    return op.rows


@dataclass(frozen=True)
class ActiveLaunch:
    id: int
    story_id: str
    run_id: str
    attempts: int


def active_launches(engine: sa.Engine) -> list[ActiveLaunch]:
    """Queued or running rows whose run id is known: the reconciler checks their runs."""
    with db_op("active_launches") as op, engine.connect() as conn:
        rows: Sequence[tuple[int, str, str, int]] = conn.execute(
            sa.select(
                story_requests.c.id,
                story_requests.c.story_id,
                story_requests.c.run_id,
                story_requests.c.attempts,
            ).where(
                story_requests.c.status.in_(("queued", "running")),
                story_requests.c.run_id.is_not(None),
                sa.not_(story_requests.c.run_id.startswith(RUN_KEY_PREFIX)),
            )
        ).all()
        op.rows = len(rows)
    return [ActiveLaunch(*row) for row in rows]


def finish_from_stories(
    engine: sa.Engine,
    story_ids: list[str],
    run_ids: list[str],
    run_error: str | None,
    *,
    run_level: bool = False,
    max_attempts: int | None = None,
) -> int:
    """Settle the rows this run was launched for (`launch_ids`), per story, so one failed
    story in a batch run fails only its own request. A finished run: its stories' own
    outcomes (succeeded, or failed / held with the story's error; the nightly schedule
    retries failed ones). A run that ended for a run-level reason (`run_level`: the worker
    died, the start timed out, it was canceled or vanished), or a failed run whose story has
    no outcome yet: the row goes to its next attempt (pending, launched by the next sensor
    tick with a new run key) while `attempts < max_attempts`, else it takes the story's own
    outcome or the run's error. The run is over when this is called, so the next attempt
    never runs beside it."""
    run_id = run_ids[0]
    with db_op("requests_finished", story_id=",".join(story_ids)) as op, engine.begin() as conn:
        outcome: dict[str, str] = dict(
            conn.execute(
                sa.select(
                    stories.c.story_id, sa.func.concat(stories.c.status, "|", stories.c.error)
                ).where(stories.c.story_id.in_(story_ids))
            ).all()
        )
        for sid in story_ids:
            status, _, error = (outcome.get(sid) or "failed|").partition("|")
            this_row = sa.and_(
                story_requests.c.story_id == sid,
                story_requests.c.status.in_(("queued", "running")),
                story_requests.c.run_id.in_(run_ids),
            )
            settled = run_error is None or (
                not run_level
                and status in ("succeeded", "failed", "held", "awaiting_review", "needs_review")
            )
            if settled:
                values = _outcome(status, error or run_error, run_id)
                if status == "failed" and is_budget_stop(error):
                    # Stopped for the day's budget: the next night (or a run on demand) resumes
                    # it, and that must not use up the request's attempts.
                    values["attempts"] = ATTEMPT_GIVEN_BACK
            else:
                retry = story_requests.c.attempts < (max_attempts or 0)
                why = f"run {run_id}: {run_error}"
                final = _outcome(status, why, run_id)
                then = {"status": "pending", "error": why[:4000], "run_id": None}
                values = {k: sa.case((retry, then[k]), else_=v) for k, v in final.items()}
            op.rows += conn.execute(
                story_requests.update().where(this_row).values(**values, updated_at=NOW)
            ).rowcount
    return op.rows


def _outcome(story_status: str, error: str | None, run_id: str) -> dict:
    if story_status in ("succeeded", "awaiting_review"):
        # awaiting_review: the text is done and a person decides next (story_review_sensor).
        return {"status": story_status, "error": None, "run_id": run_id}
    return {"status": "failed", "error": (error or "run failed")[:4000], "run_id": run_id}
