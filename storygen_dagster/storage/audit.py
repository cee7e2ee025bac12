"""Append one audit_log row per changed field, on the caller's connection so the audit row
commits or rolls back with the change itself."""

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.storage.tables import audit_log


def _hash(value: Any) -> str | None:
    # None stays None so "field was empty" is distinguishable from any real value.
    return None if value is None else content_hash(value)


def changed_fields(
    *,
    story_id: str,
    asset: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    source: str,
    updated_by: str | None,
    run_id: str | None = None,
    scene_number: int | None = None,
) -> list[dict]:
    """One audit row (as a dict) for every field in `new` whose hash differs from `old`."""
    rows = []
    for field, value in new.items():
        old_h, new_h = _hash(old.get(field)), _hash(value)
        if old_h == new_h:
            continue  # unchanged values write nothing
        rows.append(
            {
                "story_id": story_id,
                "scene_number": scene_number,
                "asset": asset,
                "field": field,
                "old_value_sha256": old_h,
                "new_value_sha256": new_h,
                "source": source,
                "updated_by": updated_by,
                "run_id": run_id,
            }
        )
    return rows


AUDIT_COLUMNS = (
    "story_id",
    "scene_number",
    "asset",
    "field",
    "old_value_sha256",
    "new_value_sha256",
    "source",
    "updated_by",
    "run_id",
)
COPY_ROWS = 64  # from this many rows on, COPY (several times faster than a batched INSERT)


def insert_rows(conn: sa.Connection, rows: list[dict]) -> int:
    if len(rows) >= COPY_ROWS:
        names = ", ".join(AUDIT_COLUMNS)
        driver = conn.connection.driver_connection
        assert driver is not None  # a connection in use holds its psycopg connection
        with driver.cursor() as cur:
            with cur.copy(f"copy audit_log ({names}) from stdin") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in AUDIT_COLUMNS])
    elif rows:
        conn.execute(sa.insert(audit_log), rows)
    return len(rows)


def record_changes(conn: sa.Connection, **kwargs: Any) -> int:
    """Insert a row for every field in `new` whose hash differs from `old`; return the count.
    Keywords as for changed_fields."""
    return insert_rows(conn, changed_fields(**kwargs))
