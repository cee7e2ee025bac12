"""Reading the story tables: stories, their scenes and requests, as the pipeline, the CLI and
the checks need them (every read one logged DB operation)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from storygen_dagster.domain.models import (
    ChildProfile,
    Scene,
    SideCharacter,
    StoryMeta,
    StoryRequest,
    StructuredStory,
)
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import scenes, stories

if TYPE_CHECKING:
    import pandas as pd


def load_requests(engine: sa.Engine, story_ids: Iterable[str]) -> dict[str, StoryRequest]:
    ids = list(story_ids)
    with db_op("load_requests", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows: Sequence[tuple[str, dict]] = conn.execute(
            sa.select(stories.c.story_id, stories.c.request).where(stories.c.story_id.in_(ids))
        ).all()
        op.rows = len(rows)
    return {sid: StoryRequest.model_validate(req) for sid, req in rows}


def load_stories(engine: sa.Engine, story_ids: Iterable[str]) -> dict[str, StructuredStory]:
    ids = list(story_ids)
    with db_op("load_stories", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows = conn.execute(sa.select(stories).where(stories.c.story_id.in_(ids))).mappings().all()
        scene_rows: Sequence[tuple[str, int, str]] = conn.execute(
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
    import pandas as pd

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
            "image_seed",
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
    import pandas as pd

    scene_count = (
        sa.select(sa.func.count()).where(scenes.c.story_id == stories.c.story_id).scalar_subquery()
    )
    query = sa.select(
        stories.c.story_id,
        stories.c.status,
        stories.c.title,
        scene_count.label("scenes"),
        stories.c.book_uri.label("book"),
        stories.c.pdf_uri.label("pdf"),
        stories.c.epub_uri.label("epub"),
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
        columns=[
            "story_id",
            "status",
            "title",
            "scenes",
            "book",
            "pdf",
            "epub",
            "error",
            "updated_at",
        ],
    )
