"""The story catalog: one row per finished story (title, child, age, value taught, scene count,
where its book is), derived from the stored story and book; written idempotently per story
(migration 0006_story_catalog)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.domain.models import StructuredStory
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import metadata

if TYPE_CHECKING:
    import pandas as pd

NOW = sa.func.now()
_now = sa.text("now()")

# Derived from the story tables, so it is defined next to its reads and writes.
story_catalog = sa.Table(
    "story_catalog",
    metadata,
    sa.Column(
        "story_id",
        sa.Text,
        sa.ForeignKey("stories.story_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("child_name", sa.Text, nullable=False),
    sa.Column("age", sa.SmallInteger, nullable=False),
    sa.Column("value_to_teach", sa.Text, nullable=False),
    sa.Column("scene_count", sa.SmallInteger, nullable=False),
    sa.Column("book_uri", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_by", sa.Text),
)

COLUMNS = ["story_id", "title", "child_name", "age", "value_to_teach", "scene_count", "book_uri"]


def catalog_rows(
    stories: Mapping[str, StructuredStory], book_uris: Mapping[str, str]
) -> pd.DataFrame:
    """One row per story, in the order of `stories`; every story needs its book's URI."""
    import pandas as pd

    rows = []
    for sid, story in stories.items():
        meta = story.story_meta
        rows.append(
            {
                "story_id": sid,
                "title": meta.story_title,
                "child_name": story.child_profile.name,
                "age": story.child_profile.age,
                "value_to_teach": meta.value_to_teach,
                "scene_count": len(story.scenes),
                "book_uri": book_uris[sid],
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def upsert_rows(engine: sa.Engine, frame: pd.DataFrame, by: str) -> int:
    """Insert or replace each story's row: re-materializing a story rewrites its row only."""
    if frame.empty:
        return 0
    records = [
        {**{c: _plain(r[c]) for c in COLUMNS}, "updated_by": by} for r in frame.to_dict("records")
    ]
    stmt = insert(story_catalog).values(records)
    stmt = stmt.on_conflict_do_update(
        index_elements=[story_catalog.c.story_id],
        set_={
            **{c: stmt.excluded[c] for c in COLUMNS[1:]},
            "updated_by": stmt.excluded.updated_by,
            "updated_at": NOW,
        },
    )
    ids = ",".join(sorted(r["story_id"] for r in records))
    with db_op("upsert_story_catalog", story_id=ids) as op, engine.begin() as conn:
        op.rows = conn.execute(stmt).rowcount
    return op.rows


def load_rows(engine: sa.Engine, story_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Each stored story's row as a one-row DataFrame (COLUMNS), by story id."""
    import pandas as pd

    ids = list(story_ids)
    cols = [story_catalog.c[c] for c in COLUMNS]
    with db_op("load_story_catalog", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows = (
            conn.execute(sa.select(*cols).where(story_catalog.c.story_id.in_(ids))).mappings().all()
        )
        op.rows = len(rows)
    return {r["story_id"]: pd.DataFrame([dict(r)], columns=COLUMNS) for r in rows}


def _plain(value):
    # pandas hands numpy integers back; the driver wants Python ints.
    return value.item() if hasattr(value, "item") else value
