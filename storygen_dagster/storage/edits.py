"""User edits: values a person sets, validated through the same contracts as the AI's output,
stored with field_sources[field] = 'user' (so AI re-runs keep them) and one audit_log row per
changed field, all in one transaction. What may be edited, and the validation, are
domain/edit_rules.py's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from storygen_dagster.domain.edit_rules import (
    FIELD_ASSETS,
    MOMENT,
    STORY_FIELDS,
    TEXT,
    EditError,
    checked_text,
    normalise,
    story_values,
)
from storygen_dagster.domain.ids import validate_story_id
from storygen_dagster.storage.audit import changed_fields
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.repository import NOW, StoryNotFound, jsonb_patch
from storygen_dagster.storage.tables import audit_log, scenes, stories


def edit_story(
    engine: sa.Engine,
    story_id: str,
    *,
    by: str,
    scene_number: int | None = None,
    text: str | None = None,
    moment: str | None = None,
    title: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Apply a user's edit; return one dict per changed field (audit id, asset, field,
    scene_number, old/new sha256). Invalid input raises EditError / StoryNotFound naming the
    field or story, and nothing is written."""
    validate_story_id(story_id)
    if not by or not by.strip():
        raise EditError("by: name who made the edit")
    title, fields = normalise(title, fields)
    if (text is not None or moment is not None) and scene_number is None:
        raise EditError("scene_number: required to edit a scene's text or moment")
    if scene_number is not None and text is None and moment is None:
        raise EditError(f"scene {scene_number}: nothing to change (give text or moment)")
    if text is None and moment is None and title is None and not fields:
        raise EditError("nothing to edit: give text, moment, title or fields")
    scene_values: dict[str, str] = {}
    if text is not None:
        scene_values["text"] = checked_text(TEXT, text, "text")
    if moment is not None:
        scene_values["moment"] = checked_text(MOMENT, moment, "moment")
    owned = [*(["title"] if title is not None else []), *{p.split(".")[0] for p in fields}]
    common: dict[str, Any] = {
        "story_id": story_id,
        "source": "user",
        "updated_by": by,
        "run_id": None,
    }
    operation = db_op("edit_story", story_id=story_id, scene_id=scene_number)
    with operation as op, engine.begin() as conn:
        found = (
            conn.execute(
                sa.select(stories.c.title, *(stories.c[f] for f in STORY_FIELDS))
                .where(stories.c.story_id == story_id)
                .with_for_update()
            )
            .mappings()
            .one_or_none()
        )
        if found is None:
            raise StoryNotFound(f"story_id {story_id!r} not found")
        row: dict[str, Any] = dict(found)
        new_values = story_values(row, story_id, title, fields)
        audit_rows = [
            r
            for f, v in new_values.items()
            for r in changed_fields(asset=FIELD_ASSETS[f], old=row, new={f: v}, **common)
        ]
        changed = {r["field"] for r in audit_rows}
        if scene_values:
            found_scene = (
                conn.execute(
                    sa.select(scenes.c.text, scenes.c.moment)
                    .where(scenes.c.story_id == story_id, scenes.c.scene_number == scene_number)
                    .with_for_update()
                )
                .mappings()
                .one_or_none()
            )
            if found_scene is None:
                numbers: Iterable[int] = conn.execute(
                    sa.select(scenes.c.scene_number)
                    .where(scenes.c.story_id == story_id)
                    .order_by(scenes.c.scene_number)
                ).scalars()
                raise EditError(
                    f"scene_number: story {story_id!r} has no scene {scene_number} "
                    f"(its scenes: {', '.join(map(str, numbers)) or 'none yet'})"
                )
            scene: dict[str, Any] = dict(found_scene)
            scene_rows = [
                r
                for f, v in scene_values.items()
                for r in changed_fields(
                    asset=FIELD_ASSETS[f],
                    old=scene,
                    new={f: v},
                    scene_number=scene_number,
                    **common,
                )
            ]
            audit_rows += scene_rows
            _write(
                conn,
                scenes.update().where(
                    scenes.c.story_id == story_id, scenes.c.scene_number == scene_number
                ),
                scenes,
                {r["field"]: scene_values[r["field"]] for r in scene_rows},
                by,
            )
        # A title edit rewrites story_meta.story_title too, but story_meta stays the AI's.
        _write(
            conn,
            stories.update().where(stories.c.story_id == story_id),
            stories,
            {f: new_values[f] for f in changed},
            by,
            owned=[f for f in owned if f in changed],
        )
        ids: Iterable[int] = []
        if audit_rows:
            ids = conn.execute(
                sa.insert(audit_log).returning(audit_log.c.id, sort_by_parameter_order=True),
                audit_rows,
            ).scalars()
        op.rows = len(audit_rows)
        return [
            {
                "id": audit_id,
                "asset": r["asset"],
                "field": r["field"],
                "scene_number": r["scene_number"],
                "old_value_sha256": r["old_value_sha256"],
                "new_value_sha256": r["new_value_sha256"],
            }
            for audit_id, r in zip(list(ids), audit_rows, strict=True)
        ]


def _write(
    conn: sa.Connection,
    update: sa.Update,
    table: sa.Table,
    values: dict[str, Any],
    by: str,
    owned: list[str] | None = None,
) -> None:
    if not values:
        return
    owned = list(values) if owned is None else owned
    marker = {
        "user_edit": {
            "source": "user",
            "updated_by": by,
            "fields": sorted(values),
            "at": datetime.now(UTC).isoformat(),
        }
    }
    conn.execute(
        update.values(
            **values,
            field_sources=jsonb_patch(table.c.field_sources, {f: "user" for f in owned}),
            provenance=jsonb_patch(table.c.provenance, marker),
            source="user",
            updated_by=by,
            updated_at=NOW,
        )
    )
