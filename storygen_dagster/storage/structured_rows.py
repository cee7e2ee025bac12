"""The structured story's write: the story-level values and every scene's text in one
transaction, keeping what a user owns, with one audit row per changed field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.domain.models import Provenance, StructuredStory
from storygen_dagster.storage.audit import record_changes
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import scenes, stories
from storygen_dagster.storage.writes import (
    NOW,
    StoryNotFound,
    fingerprint_entry,
    jsonb_patch,
    log,
    log_kept,
    prov_patch,
    run_id_of,
    user_owned,
)


def _merge_story_fields(
    ai: dict[str, Any], old: Mapping[str, Any], kept: set[str]
) -> dict[str, Any]:
    """The story-level values to store: the AI's, except the fields a user owns. The title is
    stored twice (title, story_meta.story_title) and stays one value: a user's title wins, a
    user's story_meta keeps its own title; scene_count always follows the scenes written."""
    new = {f: (old[f] if f in kept else v) for f, v in ai.items()}
    if "title" in kept:
        title = old["title"]
    elif "story_meta" in kept:
        title = old["story_meta"]["story_title"]
    else:
        title = ai["title"]
    new["title"] = title
    new["story_meta"] = {
        **new["story_meta"],
        "story_title": title,
        "scene_count": ai["story_meta"]["scene_count"],
    }
    return new


def save_structured_story(
    engine: sa.Engine,
    story_id: str,
    story: StructuredStory,
    prov: Provenance,
    by: str,
    *,
    overwrite_user_edits: bool = False,
) -> int:
    """Story-level fields and every scene's text, together; scenes beyond the new count go.
    Fields a user edited are kept unless overwrite_user_edits."""
    meta = story.story_meta
    audit = {
        "updated_by": by,
        "source": prov.source,
        "model": prov.model,
        "prompt_version": prov.prompt_version,
    }
    fingerprints = fingerprint_entry("structured_story", prov.input_fingerprint)
    ai_fields = {
        "child_profile": story.child_profile.model_dump(mode="json"),
        "side_character": story.side_character.model_dump(mode="json"),
        "story_meta": meta.model_dump(mode="json"),
        "title": meta.story_title,
    }
    with db_op("save_structured_story", story_id=story_id) as op, engine.begin() as conn:
        # Old values (and who owns them) read and locked in this transaction, so the kept
        # edits and the audit rows describe exactly this change.
        found = (
            conn.execute(
                sa.select(*(stories.c[f] for f in ai_fields), stories.c.field_sources)
                .where(stories.c.story_id == story_id)
                .with_for_update()
            )
            .mappings()
            .one_or_none()
        )
        if found is None:
            raise StoryNotFound(f"story_id {story_id!r} has no request row")
        old_story: dict[str, Any] = dict(found)
        old_scenes = {
            r["scene_number"]: r
            for r in conn.execute(
                sa.select(scenes.c.scene_number, scenes.c.text, scenes.c.field_sources)
                .where(scenes.c.story_id == story_id)
                .with_for_update()
            ).mappings()
        }
        kept = user_owned(old_story["field_sources"], ai_fields, overwrite_user_edits)
        story_fields = _merge_story_fields(ai_fields, old_story, kept)
        scene_rows = []
        for s in story.scenes:
            old = old_scenes.get(s.scene_number)
            if old is not None and user_owned(old["field_sources"], ["text"], overwrite_user_edits):
                kept.add(f"text@{s.scene_number}")
                text, sources = old["text"], {}
            else:
                text, sources = s.text, {"text": "ai"}
            scene_rows.append(
                {
                    "story_id": story_id,
                    "scene_number": s.scene_number,
                    "text": text,
                    "field_sources": sources,
                    "input_fingerprints": fingerprints,
                }
            )
        conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                **story_fields,
                status="generating",
                error=None,
                provenance=prov_patch(stories.c.provenance, "structured_story", prov),
                field_sources=jsonb_patch(
                    stories.c.field_sources, {f: "ai" for f in ai_fields if f not in kept}
                ),
                input_fingerprints=jsonb_patch(stories.c.input_fingerprints, fingerprints),
                updated_at=NOW,
                **audit,
            )
        )
        dropped = [
            n
            for n, r in old_scenes.items()
            if n > meta.scene_count and user_owned(r["field_sources"], ["text"])
        ]
        if dropped:
            log.warning(
                "scene count fell to %s: user-edited scenes %s removed, story_id=%s",
                meta.scene_count,
                dropped,
                story_id,
                extra={"story_id": story_id, "asset": "structured_story"},
            )
        conn.execute(
            scenes.delete().where(
                scenes.c.story_id == story_id, scenes.c.scene_number > meta.scene_count
            )
        )
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
                "provenance": prov_patch(scenes.c.provenance, "structured_story", prov),
                "field_sources": scenes.c.field_sources.op("||")(scene_stmt.excluded.field_sources),
                "input_fingerprints": scenes.c.input_fingerprints.op("||")(
                    scene_stmt.excluded.input_fingerprints
                ),
                "updated_at": NOW,
                **{k: scene_stmt.excluded[k] for k in audit},
            },
        )
        op.rows = 1 + len(conn.execute(scene_stmt.returning(scenes.c.id)).all())
        common = {"source": prov.source, "updated_by": by, "run_id": run_id_of(by)}
        record_changes(
            conn,
            story_id=story_id,
            asset="structured_story",
            old=old_story,
            new=story_fields,
            **common,
        )
        for row in scene_rows:
            old = old_scenes.get(row["scene_number"])
            record_changes(
                conn,
                story_id=story_id,
                asset="structured_story",
                old={"text": old["text"] if old else None},
                new={"text": row["text"]},
                scene_number=row["scene_number"],
                **common,
            )
    log_kept(story_id, "structured_story", kept)
    return op.rows
