"""The review gate's table (`story_reviews`): which stories wait for a person, the decisions
made on them (each one an audit_log row with the reviewer and the note, in the same
transaction), and what the review sensor still has to launch.

States: `awaiting` (text done, no picture until approved), `approved` (pictures and book may
be made), `rejected` (the text is regenerated with the note as guidance, then `awaiting`
again with the next round)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.storage.audit import changed_fields
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import (
    audit_log,
    scenes,
    stories,
    story_requests,
    story_reviews,
)
from storygen_dagster.storage.writes import NOW, StoryNotFound

REVIEW_ASSET = "scene_moments"  # the asset whose `approved` check a decision reports
REVIEW_FIELD = "review"
MAX_NOTE = 2000
MAX_BY = 200


class ReviewError(ValueError):
    """A decision that cannot be made (nothing was changed)."""


@dataclass(frozen=True)
class Decision:
    story_id: str
    decision: str  # approved | rejected
    by: str
    note: str | None
    round: int
    changed: bool  # False: the same decision was already recorded (idempotent repeat)
    audit_id: int | None


def _clean(by: str, note: str | None, *, note_required: bool) -> tuple[str, str | None]:
    by, note = (by or "").strip(), (note or "").strip() or None
    if not by or len(by) > MAX_BY:
        raise ReviewError(f"--by: a reviewer name of 1-{MAX_BY} characters is required")
    if note_required and not note:
        raise ReviewError("--note: a rejection needs a note saying what to change")
    if note and len(note) > MAX_NOTE:
        raise ReviewError(f"--note: at most {MAX_NOTE} characters (got {len(note)})")
    return by, note


def state(engine: sa.Engine, story_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(story_reviews).where(story_reviews.c.story_id == story_id))
            .mappings()
            .first()
        )
    return dict(row) if row else None


def reopen(engine: sa.Engine, story_id: str) -> int:
    """An approved story whose text a run changed waits for review again (next round): the
    approval was of the text the reviewer read."""
    with db_op("review_reopen", story_id=story_id) as op, engine.begin() as conn:
        op.rows = conn.execute(
            story_reviews.update()
            .where(story_reviews.c.story_id == story_id, story_reviews.c.state == "approved")
            .values(state="awaiting", round=story_reviews.c.round + 1, updated_at=NOW)
        ).rowcount
    return op.rows


def hold(engine: sa.Engine, story_id: str, *, regenerated: bool) -> str:
    """The story reached the gate unapproved: it waits for review (a first hold, or the new
    text of a rejected story when this run `regenerated` it). Returns the state."""
    with db_op("review_hold", story_id=story_id), engine.begin() as conn:
        stmt = insert(story_reviews).values(story_id=story_id, state="awaiting")
        conn.execute(stmt.on_conflict_do_nothing(index_elements=[story_reviews.c.story_id]))
        row: str = conn.execute(
            sa.select(story_reviews.c.state)
            .where(story_reviews.c.story_id == story_id)
            .with_for_update()
        ).scalar_one()
        if row == "rejected" and regenerated:
            conn.execute(
                story_reviews.update()
                .where(story_reviews.c.story_id == story_id)
                .values(state="awaiting", round=story_reviews.c.round + 1, updated_at=NOW)
            )
            row = "awaiting"
        conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(status="awaiting_review", error=None, updated_at=NOW)
        )
    return row


def decide(
    engine: sa.Engine, story_id: str, decision: str, by: str, note: str | None = None
) -> Decision:
    """Approve or reject a story that awaits review, with its audit row, in one transaction.
    Approving an approved story (or rejecting a rejected one with the same note) again
    changes nothing; any other decision on a story not awaiting review is refused."""
    if decision not in ("approved", "rejected"):
        raise ReviewError(f"decision must be approved or rejected, got {decision!r}")
    by, note = _clean(by, note, note_required=decision == "rejected")
    with db_op("review_decide", story_id=story_id), engine.begin() as conn:
        status = conn.execute(
            sa.select(stories.c.status).where(stories.c.story_id == story_id)
        ).scalar_one_or_none()
        if status is None:
            raise StoryNotFound(f"story_id {story_id!r} not found")
        row = (
            conn.execute(
                sa.select(story_reviews)
                .where(story_reviews.c.story_id == story_id)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if (
            row is not None
            and row["state"] == decision
            and (decision == "approved" or row["note"] == note)
        ):
            return Decision(story_id, decision, by, row["note"], row["round"], False, None)
        if row is None or row["state"] != "awaiting":
            now = row["state"] if row else f"status {status}, never held for review"
            raise ReviewError(f"story {story_id} is not awaiting review ({now}): nothing changed")
        conn.execute(
            story_reviews.update()
            .where(story_reviews.c.story_id == story_id)
            .values(
                state=decision,
                note=note,
                decided_by=by,
                decided_at=NOW,
                run_key=None,
                updated_at=NOW,
            )
        )
        # Approved: pictures are next; rejected: the text is made again. Neither is review.
        conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(status="pending", updated_at=NOW, updated_by=by)
        )
        audit_id = _audit(conn, story_id, decision, by, note)
    return Decision(story_id, decision, by, note, row["round"], True, audit_id)


def _audit(conn: sa.Connection, story_id: str, decision: str, by: str, note: str | None) -> int:
    [entry] = changed_fields(
        story_id=story_id,
        asset=REVIEW_ASSET,
        old={REVIEW_FIELD: "awaiting"},
        new={REVIEW_FIELD: decision},
        source="user",
        updated_by=by,
    )
    return conn.execute(
        sa.insert(audit_log).values(**entry, note=note).returning(audit_log.c.id)
    ).scalar_one()


def awaiting(engine: sa.Engine) -> list[dict[str, Any]]:
    """Stories waiting for a reviewer, oldest first, each with its scenes' text and moment."""
    with db_op("review_awaiting") as op, engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                story_reviews.c.story_id,
                story_reviews.c.round,
                story_reviews.c.note,
                story_reviews.c.updated_at,
                stories.c.title,
                stories.c.status,
            )
            .join(stories, stories.c.story_id == story_reviews.c.story_id)
            .where(story_reviews.c.state == "awaiting")
            .order_by(story_reviews.c.updated_at, story_reviews.c.story_id)
        ).mappings()
        found = [dict(r) for r in rows]
        ids = [r["story_id"] for r in found]
        scene_rows: Sequence[tuple[str, int, str, str | None]] = conn.execute(
            sa.select(scenes.c.story_id, scenes.c.scene_number, scenes.c.text, scenes.c.moment)
            .where(scenes.c.story_id.in_(ids))
            .order_by(scenes.c.story_id, scenes.c.scene_number)
        ).all()
        op.rows = len(found)
    by_story: dict[str, list[dict]] = {}
    for sid, number, text, moment in scene_rows:
        by_story.setdefault(sid, []).append(
            {"scene_number": number, "text": text, "moment": moment}
        )
    for r in found:
        r["scenes"] = by_story.get(r["story_id"], [])
    return found


def to_launch(engine: sa.Engine) -> list[tuple[str, str, int]]:
    """(story id, state, round) of decided stories whose next run has not started: the review
    sensor asks for it on every tick until it does (the same run key each time, so Dagster
    launches it once, also after a tick lost in a crash)."""
    with engine.connect() as conn:
        rows: Sequence[tuple[str, str, int]] = conn.execute(
            sa.select(story_reviews.c.story_id, story_reviews.c.state, story_reviews.c.round)
            .join(stories, stories.c.story_id == story_reviews.c.story_id)
            .where(
                story_reviews.c.state.in_(("approved", "rejected")),
                stories.c.status == "pending",
            )
            .order_by(story_reviews.c.decided_at, story_reviews.c.story_id)
        ).all()
    return [(sid, st, rnd) for sid, st, rnd in rows]


def mark_launched(engine: sa.Engine, story_id: str, run_key: str) -> list[int]:
    """Record the run asked for after the decision; the story's request row (if it came
    through story_requests and waits for review) is queued with it, so the run status sensors
    settle it. Returns the request ids moved."""
    with engine.begin() as conn:
        conn.execute(
            story_reviews.update()
            .where(story_reviews.c.story_id == story_id)
            .values(run_key=run_key, updated_at=NOW)
        )
        ids: Sequence[int] = (
            conn.execute(
                sa.select(story_requests.c.id).where(
                    story_requests.c.story_id == story_id,
                    story_requests.c.status == "awaiting_review",
                )
            )
            .scalars()
            .all()
        )
    return list(ids)
