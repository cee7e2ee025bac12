"""The picture reviews (issue 16): each round's verdict on a scene picture, and the audit row of
a redraw (which picture replaced which, and why), in one transaction. Read back as each scene's
latest verdict on the picture it holds now (the check on stored values, the book's guard)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.storage.audit import insert_rows
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import picture_reviews, scenes
from storygen_dagster.storage.writes import run_id_of


@dataclass(frozen=True)
class ReviewRound:
    story_id: str
    scene_number: int
    round: int
    image_sha256: str
    passed: bool
    safety_failed: bool
    verdicts: dict[str, dict[str, Any]]
    suggested_fix: str
    reviewer: str
    model: str
    prompt_version: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool
    replaced: str | None = None  # the sha256 of the picture this one was drawn to replace
    why: str = ""  # what the replaced picture failed


def record_round(engine: sa.Engine, row: ReviewRound, by: str) -> None:
    """Upsert the round's verdict; a redraw also appends its audit row."""
    values = {k: v for k, v in row.__dict__.items() if k not in ("replaced", "why")}
    stmt = insert(picture_reviews).values(**values, updated_by=by)
    stmt = stmt.on_conflict_do_update(
        index_elements=["story_id", "scene_number", "round", "image_sha256", "updated_by"],
        set_={k: stmt.excluded[k] for k in ("passed", "safety_failed", "verdicts", "cost_usd")},
    )
    with db_op("picture_review", story_id=row.story_id, scene_id=row.scene_number) as op:
        with engine.begin() as conn:
            # rowcount is -1 for this upsert here: count what RETURNING gives back.
            op.rows = len(conn.execute(stmt.returning(picture_reviews.c.id)).all())
            if row.replaced is not None:
                op.rows += insert_rows(
                    conn,
                    [
                        {
                            "story_id": row.story_id,
                            "scene_number": row.scene_number,
                            "asset": "scene_images",
                            "field": "image_redraw",
                            "old_value_sha256": row.replaced,
                            "new_value_sha256": row.image_sha256,
                            "source": "ai",
                            "updated_by": by,
                            "run_id": run_id_of(by),
                            "note": f"redraw {row.round}: {row.why}"[:2000],
                        }
                    ],
                )


def current_verdicts(engine: sa.Engine, story_id: str) -> dict[int, dict[str, Any]]:
    """Per scene, the latest review of the picture the scene holds now (scenes whose picture
    was never reviewed are absent)."""
    latest = (
        sa.select(picture_reviews)
        .join(
            scenes,
            sa.and_(
                scenes.c.story_id == picture_reviews.c.story_id,
                scenes.c.scene_number == picture_reviews.c.scene_number,
                scenes.c.image_sha256 == picture_reviews.c.image_sha256,
            ),
        )
        .where(picture_reviews.c.story_id == story_id)
        .order_by(picture_reviews.c.scene_number, picture_reviews.c.id.desc())
    )
    with engine.connect() as conn:
        rows: Sequence[sa.RowMapping] = conn.execute(latest).mappings().all()
    found: dict[int, dict[str, Any]] = {}
    for r in rows:
        found.setdefault(int(r["scene_number"]), dict(r))
    return found


def review_rounds(engine: sa.Engine, story_id: str) -> list[dict[str, Any]]:
    """Every round of the story, oldest first."""
    query = (
        sa.select(picture_reviews)
        .where(picture_reviews.c.story_id == story_id)
        .order_by(picture_reviews.c.id)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
