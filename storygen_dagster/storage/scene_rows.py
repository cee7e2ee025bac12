"""Writes of the scenes aggregate: one column set (moments, or image prompt + uri + sha) for
many scene rows, as batched idempotent upserts in one transaction, keeping user edits."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.storage.audit import changed_fields, insert_rows
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import scenes
from storygen_dagster.storage.writes import (
    NOW,
    fingerprint_entry,
    log_kept,
    run_id_of,
    user_owned,
)

if TYPE_CHECKING:
    import pandas as pd


def _on_conflict(stmt, columns: tuple[str, ...]):
    # The text only fills a row that is missing; an existing scene's text is never overwritten here.
    return stmt.on_conflict_do_update(
        constraint="uq_scenes_story_scene",
        set_={
            **{c: stmt.excluded[c] for c in columns},
            "provenance": scenes.c.provenance.op("||")(stmt.excluded.provenance),
            "field_sources": scenes.c.field_sources.op("||")(stmt.excluded.field_sources),
            "input_fingerprints": scenes.c.input_fingerprints.op("||")(
                stmt.excluded.input_fingerprints
            ),
            "model": stmt.excluded.model,
            "prompt_version": stmt.excluded.prompt_version,
            "updated_by": stmt.excluded.updated_by,
            "source": stmt.excluded.source,
            "updated_at": NOW,
        },
    ).returning(scenes.c.id)


def _batch_columns(columns: tuple[str, ...]) -> list[str]:
    return [
        "story_id",
        "scene_number",
        "text",
        *columns,
        "provenance",
        "model",
        "prompt_version",
        "updated_by",
        "source",
        "field_sources",
        "input_fingerprints",
    ]


@functools.cache
def _scene_columns_upsert(columns: tuple[str, ...]) -> sa.Insert:
    """One statement per column set, built once: executed with a list of rows, SQLAlchemy
    reuses its compiled form and sends the rows in batches (insertmanyvalues)."""
    return _on_conflict(insert(scenes), columns)


@functools.cache
def _scene_bulk_upsert(columns: tuple[str, ...]) -> sa.Insert:
    """The same upsert from the rows COPYed into the `_scene_batch` temp table."""
    cols = _batch_columns(columns)
    batch = sa.table("_scene_batch", *(sa.column(c) for c in cols))
    return _on_conflict(insert(scenes).from_select(cols, sa.select(*batch.c)), columns)


# From this many rows on, rows go in by COPY into a temp table and one INSERT ... SELECT:
# ~10x the rows/s of a parameterised multi-row upsert (bench/db_upserts.py).
BULK_ROWS = 64


def _execute_upsert(
    conn: sa.Connection, records: list[dict], columns: tuple[str, ...]
) -> Sequence[int]:
    if len(records) < BULK_ROWS:
        return conn.execute(_scene_columns_upsert(columns), records).scalars().all()
    cols = _batch_columns(columns)
    names = ", ".join(cols)
    conn.exec_driver_sql(
        f"create temp table _scene_batch on commit drop as select {names} from scenes limit 0"
    )
    driver = conn.connection.driver_connection
    assert driver is not None  # a connection in use holds its psycopg connection
    with driver.cursor() as cur:
        with cur.copy(f"copy _scene_batch ({names}) from stdin") as copy:
            for rec in records:
                copy.write_row(
                    [
                        orjson.dumps(v).decode() if isinstance(v, dict) else v
                        for v in (rec[c] for c in cols)
                    ]
                )
    return conn.execute(_scene_bulk_upsert(columns)).scalars().all()


def upsert_scene_columns(
    engine: sa.Engine,
    frame: pd.DataFrame,
    columns: list[str],
    asset: str,
    by: str,
    *,
    overwrite_user_edits: bool = False,
) -> int:
    """One batched upsert of `columns` for many (story_id, scene_number) rows, in one
    transaction with its audit rows; the timing in the log line. Provenance columns (and
    input_fingerprint) come from the frame's `provenance` dicts. A column a user edited keeps
    its value unless overwrite_user_edits."""
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
            "field_sources": {c: "ai" for c in columns},
            "input_fingerprints": fingerprint_entry(
                asset, r["provenance"].get("input_fingerprint")
            ),
        }
        for r in frame.to_dict("records")
    ]
    story_ids = sorted(set(frame["story_id"]))
    kept: dict[str, set[str]] = {}
    with db_op(f"upsert_{asset}", story_id=",".join(story_ids)) as op, engine.begin() as conn:
        # Old values read and locked in this transaction, so the kept edits and the audit
        # rows describe exactly this change.
        before = {
            (r["story_id"], r["scene_number"]): dict(r)  # plain dicts: RowMapping.get is slow
            for r in conn.execute(
                sa.select(
                    scenes.c.story_id,
                    scenes.c.scene_number,
                    scenes.c.field_sources,
                    *(scenes.c[c] for c in columns),
                )
                .where(scenes.c.story_id.in_(story_ids))
                .with_for_update()
            ).mappings()
        }
        for rec in records:
            old = before.get((rec["story_id"], rec["scene_number"]))
            if old is None:
                continue
            for c in user_owned(old["field_sources"], columns, overwrite_user_edits):
                rec[c] = old[c]  # the upsert writes the user's value back unchanged
                del rec["field_sources"][c]
                kept.setdefault(rec["story_id"], set()).add(f"{c}@{rec['scene_number']}")
        ids = _execute_upsert(conn, records, tuple(columns))
        op.rows, op.scene_id = len(ids), ",".join(map(str, sorted(ids)))
        changes = []
        for rec in records:
            old = before.get((rec["story_id"], rec["scene_number"])) or {}
            changes += changed_fields(
                story_id=rec["story_id"],
                asset=asset,
                old={c: old.get(c) for c in columns},
                new={c: rec[c] for c in columns},
                source=rec["source"],
                updated_by=by,
                run_id=run_id_of(by),
                scene_number=rec["scene_number"],
            )
        insert_rows(conn, changes)  # one executemany for the whole batch
    for sid, fields in kept.items():
        log_kept(sid, asset, fields)
    return op.rows
