"""db_upserts: scene rows upserted per second through repository.upsert_scene_columns, one call
for every row (batched) vs one call per story (what the scene_moments asset does today) vs one
call per row, on separate sets of stories in the same database and process. SQL time is split
by statement kind with SQLAlchemy cursor events, to show where a slow path spends its time
(COPY, which the batched path uses from 64 rows on, is not a cursor event: it counts in
outside_sql_s)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import sqlalchemy as sa

from storygen_dagster.domain.models import Provenance
from storygen_dagster.storage.repository import upsert_scene_columns
from storygen_dagster.storage.tables import scenes, stories

SCENES_PER_STORY = 4
BY = "run:bench-db-upserts"


def _kind(statement: str) -> str:
    s = " ".join(statement.split()).upper()
    if s.startswith("SELECT") and "FOR UPDATE" in s:
        return "select_for_update"
    if s.startswith("INSERT INTO SCENES"):
        return "scene_upsert"
    if s.startswith("INSERT INTO AUDIT_LOG"):
        return "audit_insert"
    return "other"


@contextmanager
def sql_timer(engine: sa.Engine) -> Iterator[dict]:
    """Seconds and statement counts per kind, for statements run on `engine` inside the block."""
    totals: dict = defaultdict(float)

    def before(conn, cursor, statement, params, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        kind = _kind(statement)
        totals[f"{kind}_s"] += time.perf_counter() - conn.info.pop("bench_t0")
        totals[f"{kind}_n"] += 1

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield totals
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


def seed(engine: sa.Engine, story_ids: list[str]) -> None:
    """Story rows and scene texts as save_structured_story leaves them (bulk-inserted: setup)."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(stories),
            [
                {"story_id": sid, "request": {"story_id": sid}, "status": "generating"}
                for sid in story_ids
            ],
        )
        conn.execute(
            sa.insert(scenes),
            [
                {
                    "story_id": sid,
                    "scene_number": n,
                    "text": f"Scene {n} of {sid}.",
                    "updated_by": BY,
                }
                for sid in story_ids
                for n in range(1, SCENES_PER_STORY + 1)
            ],
        )


def frame_for(story_ids: list[str], tag: str) -> pd.DataFrame:
    prov = Provenance(
        provider="bench", model="bench-chat", prompt_name="scene_moment", prompt_version="v1"
    ).model_dump()
    return pd.DataFrame(
        [
            {
                "story_id": sid,
                "scene_number": n,
                "text": f"Scene {n} of {sid}.",
                "moment": f"{tag}: the child smiles in scene {n} of {sid}",
                "provenance": prov,
            }
            for sid in story_ids
            for n in range(1, SCENES_PER_STORY + 1)
        ]
    )


def _timed(engine: sa.Engine, frames: list[pd.DataFrame]) -> dict:
    with sql_timer(engine) as sql:
        started = time.perf_counter()
        rows = sum(upsert_scene_columns(engine, f, ["moment"], "scene_moments", BY) for f in frames)
        wall = time.perf_counter() - started
    sql_s = sum(v for k, v in sql.items() if k.endswith("_s"))
    return {
        "rows": rows,
        "calls": len(frames),
        "wall_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 1),
        # Where the time went: SQL per statement kind, and the rest (Python: DataFrame to
        # records, statement compilation, audit hashing, commits, logging).
        **{k: round(v, 3) if k.endswith("_s") else int(v) for k, v in sorted(sql.items())},
        "outside_sql_s": round(wall - sql_s, 3),
    }


def measure(engine: sa.Engine, stories_count: int, prefix: str = "up") -> dict:
    sets = {
        mode: [f"{prefix}-{mode}-{i:05d}" for i in range(stories_count)]
        for mode in ("batched", "per_story", "row")
    }
    for ids in sets.values():
        seed(engine, ids)
    batched = _timed(engine, [frame_for(sets["batched"], "batched")])
    per_story_frame = frame_for(sets["per_story"], "per_story")
    per_story = _timed(engine, [g for _, g in per_story_frame.groupby("story_id", sort=False)])
    row_frame = frame_for(sets["row"], "row")
    by_row = _timed(engine, [row_frame.iloc[[i]] for i in range(len(row_frame))])
    with engine.connect() as conn:
        written = conn.execute(
            sa.select(sa.func.count())
            .select_from(scenes)
            .where(scenes.c.story_id.like(f"{prefix}-%"), scenes.c.moment.is_not(None))
        ).scalar_one()
    return {
        "stories": stories_count,
        "scenes_per_story": SCENES_PER_STORY,
        "batched": batched,
        "per_story": per_story,
        "row_by_row": by_row,
        "ok": written == 3 * stories_count * SCENES_PER_STORY,
    }
