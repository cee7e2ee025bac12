"""Writes of the stories aggregate (the request, the structured story, the story-level values,
the book, the status): each an idempotent upsert in one transaction, logged and audited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.domain.assets import PRINT_FILES
from storygen_dagster.domain.models import Provenance, StoryRequest
from storygen_dagster.storage.audit import record_changes
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import stories
from storygen_dagster.storage.writes import (
    NOW,
    StoryNotFound,
    fingerprint_entry,
    jsonb_patch,
    log_kept,
    prov_patch,
    run_id_of,
    user_owned,
)

UPSERT_CHUNK = 1000  # rows per statement (Postgres allows 65,535 parameters in one)


def register_request(engine: sa.Engine, story_id: str, request: StoryRequest, by: str) -> None:
    register_requests(engine, [(story_id, request)], by, operation="register_request")


def register_requests(
    engine: sa.Engine,
    items: Sequence[tuple[str, StoryRequest]],
    by: str,
    *,
    operation: str = "register_requests",
) -> int:
    """Store each story's request (a later item for the same story wins), in one transaction
    of multi-row upserts: the nightly schedule stores thousands per tick (one transaction per
    request spent 16 ms each in commits under load, 10,000 took 55 s of the tick's 60)."""
    if not items:
        return 0
    latest = {sid: request.model_dump(mode="json", exclude_none=True) for sid, request in items}
    rows = [
        {"story_id": sid, "request": payload, "updated_by": by} for sid, payload in latest.items()
    ]
    stmt = insert(stories)
    stmt = stmt.on_conflict_do_update(
        index_elements=[stories.c.story_id],
        set_={"request": stmt.excluded.request, "updated_by": by, "updated_at": NOW},
    )
    story_id = next(iter(latest)) if len(latest) == 1 else None
    with db_op(operation, story_id=story_id) as op, engine.begin() as conn:
        for i in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[i : i + UPSERT_CHUNK]
            op.rows += len(conn.execute(stmt.values(chunk).returning(stories.c.story_id)).all())
    return op.rows


def save_story_field(
    engine: sa.Engine,
    story_id: str,
    field: str,
    value: Mapping[str, Any],
    prov: Provenance,
    by: str,
    *,
    overwrite_user_edits: bool = False,
) -> None:
    """visual_profile or base_style; a user's edit of the field is kept unless
    overwrite_user_edits (provenance and fingerprint still record this generation)."""
    if field not in ("visual_profile", "base_style"):
        raise ValueError(f"not a story-level generated field: {field}")
    save_generated_column(
        engine,
        story_id,
        asset=field,
        column=field,
        value=dict(value),
        prov=prov,
        by=by,
        source=prov.source,
        overwrite_user_edits=overwrite_user_edits,
    )


def save_generated_column(
    engine: sa.Engine,
    story_id: str,
    *,
    asset: str,
    column: str,
    value: Any,
    prov: Provenance,
    by: str,
    source: str,
    overwrite_user_edits: bool = False,
    operation: str | None = None,
) -> bool:
    """One generated story-level value (`column` of `stories`, built by `asset`): provenance
    and input fingerprint always record this generation; the value itself, its owner and its
    audit row only when the user does not own the column (or overwrite_user_edits). True when
    the value was written."""
    with db_op(operation or f"save_{column}", story_id=story_id) as op, engine.begin() as conn:
        # Read the old value in the same transaction so the audit row matches the change.
        before = conn.execute(
            sa.select(stories.c[column], stories.c.field_sources)
            .where(stories.c.story_id == story_id)
            .with_for_update()
        ).one_or_none()
        if before is None:
            raise StoryNotFound(f"story_id {story_id!r} has no row")
        kept = user_owned(before.field_sources, [column], overwrite_user_edits)
        values: dict[str, Any] = {
            "provenance": prov_patch(stories.c.provenance, asset, prov),
            "input_fingerprints": jsonb_patch(
                stories.c.input_fingerprints, fingerprint_entry(asset, prov.input_fingerprint)
            ),
            "updated_at": NOW,
            "updated_by": by,
        }
        if not kept:
            values[column] = value
            values["field_sources"] = jsonb_patch(stories.c.field_sources, {column: "ai"})
        op.rows = conn.execute(
            stories.update().where(stories.c.story_id == story_id).values(values)
        ).rowcount
        if not kept:
            record_changes(
                conn,
                story_id=story_id,
                asset=asset,
                old={column: before[0]},
                new={column: value},
                source=source,
                updated_by=by,
                run_id=run_id_of(by),
            )
    log_kept(story_id, asset, kept)
    return not kept


def set_book(
    engine: sa.Engine,
    story_id: str,
    book_uri: str,
    by: str,
    *,
    input_fingerprint: str | None = None,
) -> None:
    with db_op("set_book", story_id=story_id) as op, engine.begin() as conn:
        before = conn.execute(
            sa.select(stories.c.book_uri).where(stories.c.story_id == story_id).with_for_update()
        ).scalar_one_or_none()
        op.rows = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                book_uri=book_uri,
                status="succeeded",
                error=None,
                field_sources=jsonb_patch(stories.c.field_sources, {"book_uri": "ai"}),
                input_fingerprints=jsonb_patch(
                    stories.c.input_fingerprints, fingerprint_entry("storybook", input_fingerprint)
                ),
                updated_at=NOW,
                updated_by=by,
            )
        ).rowcount
        if op.rows:  # no row, no change to audit
            record_changes(
                conn,
                story_id=story_id,
                asset="book",
                old={"book_uri": before},
                new={"book_uri": book_uri},
                source="ai",
                updated_by=by,
                run_id=run_id_of(by),
            )


def set_print_file(
    engine: sa.Engine,
    story_id: str,
    asset: str,
    uri: str,
    by: str,
    *,
    input_fingerprint: str | None = None,
) -> None:
    """The URI of the story's storybook_pdf or storybook_epub (the status is the HTML book's)."""
    column = stories.c[PRINT_FILES[asset]]
    with db_op(f"set_{asset}", story_id=story_id) as op, engine.begin() as conn:
        before = conn.execute(
            sa.select(column).where(stories.c.story_id == story_id).with_for_update()
        ).scalar_one_or_none()
        op.rows = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                {
                    column: uri,
                    stories.c.field_sources: jsonb_patch(
                        stories.c.field_sources, {column.name: "ai"}
                    ),
                    stories.c.input_fingerprints: jsonb_patch(
                        stories.c.input_fingerprints, fingerprint_entry(asset, input_fingerprint)
                    ),
                    stories.c.updated_at: NOW,
                    stories.c.updated_by: by,
                }
            )
        ).rowcount
        if op.rows:
            record_changes(
                conn,
                story_id=story_id,
                asset=asset,
                old={column.name: before},
                new={column.name: uri},
                source="ai",
                updated_by=by,
                run_id=run_id_of(by),
            )


def mark_failed(
    engine: sa.Engine, story_id: str, error: str, by: str, *, status: str = "failed"
) -> None:
    """Record a failure (or a hold) without touching any generated field: the last good
    values stay."""
    with db_op("mark_failed", story_id=story_id) as op, engine.begin() as conn:
        op.rows = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(status=status, error=error[:2000], updated_at=NOW, updated_by=by)
        ).rowcount
