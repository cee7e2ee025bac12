"""Repository functions: every write is an idempotent upsert in one transaction, logged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.domain.models import (
    ChildProfile,
    Provenance,
    Scene,
    SideCharacter,
    StoryMeta,
    StoryRequest,
    StructuredStory,
)
from storygen_dagster.storage.audit import record_changes
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import scenes, stories

NOW = sa.func.now()


class StoryNotFound(LookupError):
    pass


def _run_id(by: str) -> str | None:
    """Assets write by='run:<run_id>'; anything else (a user name) has no run."""
    return by.removeprefix("run:") if by.startswith("run:") else None


def _prov_patch(column: sa.Column, asset: str, prov: Provenance) -> sa.ColumnElement:
    """provenance = provenance || {asset: {...}}: one entry per asset, the latest wins."""
    return column.op("||")(
        sa.func.jsonb_build_object(asset, sa.cast(prov.model_dump(), column.type))
    )


def register_request(engine: sa.Engine, story_id: str, request: StoryRequest, by: str) -> None:
    payload = request.model_dump(mode="json", exclude_none=True)
    stmt = insert(stories).values(story_id=story_id, request=payload, updated_by=by)
    stmt = stmt.on_conflict_do_update(
        index_elements=[stories.c.story_id],
        set_={"request": stmt.excluded.request, "updated_by": by, "updated_at": NOW},
    )
    with db_op("register_request", story_id=story_id) as op, engine.begin() as conn:
        op.rows = len(conn.execute(stmt.returning(stories.c.story_id)).all())


def load_requests(engine: sa.Engine, story_ids: Iterable[str]) -> dict[str, StoryRequest]:
    ids = list(story_ids)
    with db_op("load_requests", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows = conn.execute(
            sa.select(stories.c.story_id, stories.c.request).where(stories.c.story_id.in_(ids))
        ).all()
        op.rows = len(rows)
    return {sid: StoryRequest.model_validate(req) for sid, req in rows}


def save_structured_story(
    engine: sa.Engine, story_id: str, story: StructuredStory, prov: Provenance, by: str
) -> int:
    """Story-level fields and every scene's text, together; scenes beyond the new count go."""
    meta = story.story_meta
    scene_rows = [
        {"story_id": story_id, "scene_number": s.scene_number, "text": s.text} for s in story.scenes
    ]
    audit = {
        "updated_by": by,
        "source": prov.source,
        "model": prov.model,
        "prompt_version": prov.prompt_version,
    }
    scene_stmt = insert(scenes).values(
        [
            {**row, **audit, "provenance": {"structured_story": prov.model_dump()}}
            for row in scene_rows
        ]
    )
    scene_stmt = scene_stmt.on_conflict_do_update(
        constraint="uq_scenes_story_scene",
        set_={
            "text": scene_stmt.excluded.text,
            "provenance": _prov_patch(scenes.c.provenance, "structured_story", prov),
            "updated_at": NOW,
            **{k: scene_stmt.excluded[k] for k in audit},
        },
    )
    story_fields = {
        "child_profile": story.child_profile.model_dump(mode="json"),
        "side_character": story.side_character.model_dump(mode="json"),
        "story_meta": meta.model_dump(mode="json"),
        "title": meta.story_title,
    }
    with db_op("save_structured_story", story_id=story_id) as op, engine.begin() as conn:
        # Old values read in this transaction, so audit rows describe exactly this change.
        old_story = (
            conn.execute(
                sa.select(*(stories.c[f] for f in story_fields))
                .where(stories.c.story_id == story_id)
                .with_for_update()
            )
            .mappings()
            .one_or_none()
        )
        old_texts = dict(
            conn.execute(
                sa.select(scenes.c.scene_number, scenes.c.text).where(scenes.c.story_id == story_id)
            ).all()
        )
        updated = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                child_profile=story.child_profile.model_dump(mode="json"),
                side_character=story.side_character.model_dump(mode="json"),
                story_meta=meta.model_dump(mode="json"),
                title=meta.story_title,
                status="generating",
                error=None,
                provenance=_prov_patch(stories.c.provenance, "structured_story", prov),
                updated_at=NOW,
                **audit,
            )
        ).rowcount
        if not updated:
            raise StoryNotFound(f"story_id {story_id!r} has no request row")
        conn.execute(
            scenes.delete().where(
                scenes.c.story_id == story_id, scenes.c.scene_number > meta.scene_count
            )
        )
        op.rows = updated + len(conn.execute(scene_stmt.returning(scenes.c.id)).all())
        common = {"source": prov.source, "updated_by": by, "run_id": _run_id(by)}
        record_changes(
            conn,
            story_id=story_id,
            asset="structured_story",
            old=dict(old_story or {}),
            new=story_fields,
            **common,
        )
        for row in scene_rows:
            record_changes(
                conn,
                story_id=story_id,
                asset="structured_story",
                old={"text": old_texts.get(row["scene_number"])},
                new={"text": row["text"]},
                scene_number=row["scene_number"],
                **common,
            )
    return op.rows


def save_story_field(
    engine: sa.Engine,
    story_id: str,
    field: str,
    value: Mapping[str, Any],
    prov: Provenance,
    by: str,
) -> None:
    if field not in ("visual_profile", "base_style"):
        raise ValueError(f"not a story-level generated field: {field}")
    with db_op(f"save_{field}", story_id=story_id) as op, engine.begin() as conn:
        # Read the old value in the same transaction so the audit row matches the change.
        before = conn.execute(
            sa.select(stories.c[field]).where(stories.c.story_id == story_id).with_for_update()
        ).scalar_one_or_none()
        op.rows = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                {
                    field: dict(value),
                    "provenance": _prov_patch(stories.c.provenance, field, prov),
                    "updated_at": NOW,
                    "updated_by": by,
                }
            )
        ).rowcount
        if not op.rows:
            raise StoryNotFound(f"story_id {story_id!r} has no row")
        record_changes(
            conn,
            story_id=story_id,
            asset=field,
            old={field: before},
            new={field: dict(value)},
            source=prov.source,
            updated_by=by,
            run_id=_run_id(by),
        )


def upsert_scene_columns(
    engine: sa.Engine, frame: pd.DataFrame, columns: list[str], asset: str, by: str
) -> int:
    """One batched upsert of `columns` for many (story_id, scene_number) rows: one statement,
    the timing in the log line. Provenance columns come from the frame's `provenance` dicts."""
    if frame.empty:
        return 0
    records = [
        {
            "story_id": r["story_id"],
            "scene_number": int(r["scene_number"]),
            "text": r["text"],
            **{c: r[c] for c in columns},
            "provenance": {asset: r["provenance"]},
            "model": r["provenance"]["model"],
            "prompt_version": r["provenance"].get("prompt_version"),
            "updated_by": by,
            "source": r["provenance"].get("source", "ai"),
        }
        for r in frame.to_dict("records")
    ]
    # The text only fills a row that is missing; an existing scene's text is never overwritten here.
    stmt = insert(scenes).values(records)
    stmt = stmt.on_conflict_do_update(
        constraint="uq_scenes_story_scene",
        set_={
            **{c: stmt.excluded[c] for c in columns},
            "provenance": scenes.c.provenance.op("||")(stmt.excluded.provenance),
            "model": stmt.excluded.model,
            "prompt_version": stmt.excluded.prompt_version,
            "updated_by": stmt.excluded.updated_by,
            "source": stmt.excluded.source,
            "updated_at": NOW,
        },
    )
    story_ids = sorted(set(frame["story_id"]))
    with db_op(f"upsert_{asset}", story_id=",".join(story_ids)) as op, engine.begin() as conn:
        # Old values read in this transaction, so audit rows describe exactly this change.
        before = {
            (r.story_id, r.scene_number): r
            for r in conn.execute(
                sa.select(scenes.c.story_id, scenes.c.scene_number, *(scenes.c[c] for c in columns))
                .where(scenes.c.story_id.in_(story_ids))
                .with_for_update()
            ).mappings()
        }
        op.rows = len(conn.execute(stmt.returning(scenes.c.id)).all())
        for rec in records:
            old = before.get((rec["story_id"], rec["scene_number"])) or {}
            record_changes(
                conn,
                story_id=rec["story_id"],
                asset=asset,
                old={c: old.get(c) for c in columns},
                new={c: rec[c] for c in columns},
                source=rec["source"],
                updated_by=by,
                run_id=_run_id(by),
                scene_number=rec["scene_number"],
            )
    return op.rows


def set_book(engine: sa.Engine, story_id: str, book_uri: str, by: str) -> None:
    with db_op("set_book", story_id=story_id) as op, engine.begin() as conn:
        before = conn.execute(
            sa.select(stories.c.book_uri).where(stories.c.story_id == story_id).with_for_update()
        ).scalar_one_or_none()
        op.rows = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                book_uri=book_uri, status="succeeded", error=None, updated_at=NOW, updated_by=by
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
                run_id=_run_id(by),
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


def load_stories(engine: sa.Engine, story_ids: Iterable[str]) -> dict[str, StructuredStory]:
    ids = list(story_ids)
    with db_op("load_stories", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows = conn.execute(sa.select(stories).where(stories.c.story_id.in_(ids))).mappings().all()
        scene_rows = conn.execute(
            sa.select(scenes.c.story_id, scenes.c.scene_number, scenes.c.text)
            .where(scenes.c.story_id.in_(ids))
            .order_by(scenes.c.story_id, scenes.c.scene_number)
        ).all()
        op.rows = len(rows) + len(scene_rows)
    by_story: dict[str, list[Scene]] = {}
    for sid, number, text in scene_rows:
        by_story.setdefault(sid, []).append(Scene(scene_number=number, text=text))
    result = {}
    for row in rows:
        if row["story_meta"] is None:
            continue  # requested but not generated yet
        result[row["story_id"]] = StructuredStory(
            child_profile=ChildProfile.model_validate(row["child_profile"]),
            side_character=SideCharacter.model_validate(row["side_character"]),
            story_meta=StoryMeta.model_validate(row["story_meta"]),
            scenes=by_story.get(row["story_id"], []),
        )
    return result


def load_story_field(engine: sa.Engine, story_ids: Iterable[str], field: str) -> dict[str, dict]:
    ids = list(story_ids)
    column = stories.c[field]
    with db_op(f"load_{field}", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows = conn.execute(
            sa.select(stories.c.story_id, column).where(
                stories.c.story_id.in_(ids), column.is_not(None)
            )
        ).all()
        op.rows = len(rows)
    return dict(rows)


def load_scenes(engine: sa.Engine, story_ids: Iterable[str]) -> pd.DataFrame:
    ids = list(story_ids)
    cols = [
        scenes.c[c]
        for c in (
            "story_id",
            "scene_number",
            "text",
            "moment",
            "image_prompt",
            "image_uri",
            "image_sha256",
            "provenance",
            "source",
            "model",
            "prompt_version",
            "updated_at",
            "updated_by",
        )
    ]
    with db_op("load_scenes", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(*cols)
                .where(scenes.c.story_id.in_(ids))
                .order_by(scenes.c.story_id, scenes.c.scene_number)
            )
            .mappings()
            .all()
        )
        op.rows = len(rows)
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in cols])


def story_overview(engine: sa.Engine, story_id: str | None = None) -> pd.DataFrame:
    scene_count = (
        sa.select(sa.func.count()).where(scenes.c.story_id == stories.c.story_id).scalar_subquery()
    )
    query = sa.select(
        stories.c.story_id,
        stories.c.status,
        stories.c.title,
        scene_count.label("scenes"),
        stories.c.book_uri.label("book"),
        stories.c.error,
        stories.c.updated_at,
    ).order_by(stories.c.created_at, stories.c.story_id)
    if story_id is not None:
        query = query.where(stories.c.story_id == story_id)
    with db_op("story_overview", story_id=story_id) as op, engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        op.rows = len(rows)
    return pd.DataFrame(
        [dict(r) for r in rows],
        columns=["story_id", "status", "title", "scenes", "book", "error", "updated_at"],
    )
