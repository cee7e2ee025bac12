"""A story's full history: audit_log rows joined with the Dagster materializations that made
them (model and prompt version of an AI run, the runless event of a user edit). It reads the
Dagster event log, so it takes the instance; the storage tables stay the source of record."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.repository import StoryNotFound
from storygen_dagster.storage.tables import audit_log, scenes, stories

# audit_log.asset -> Dagster asset key, where the two differ.
ASSET_KEYS = {"book": "storybook"}
RUN_FACTS = ("model", "prompt_version", "provider", "prompt_sha256")


def asset_key(asset: str) -> dg.AssetKey:
    return dg.AssetKey(ASSET_KEYS.get(asset, asset))


def _materializations(
    instance: dg.DagsterInstance, asset: str, story_id: str
) -> Iterator[dg.EventLogRecord]:
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key(asset), asset_partitions=[story_id]),
            limit=500,
            cursor=cursor,
            ascending=True,
        )
        yield from result.records
        if not result.has_more:
            return
        cursor = result.cursor


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    assert materialization is not None  # a record from fetch_materializations
    return {k: v.value for k, v in materialization.metadata.items()}


def _provenance(engine: sa.Engine, story_id: str) -> dict[tuple[str, int | None], dict]:
    """Per (asset, scene_number) the provenance of the latest AI generation."""
    with engine.connect() as conn:
        story: dict | None = conn.execute(
            sa.select(stories.c.provenance).where(stories.c.story_id == story_id)
        ).scalar_one_or_none()
        scene_rows: Sequence[tuple[int, dict]] = conn.execute(
            sa.select(scenes.c.scene_number, scenes.c.provenance).where(
                scenes.c.story_id == story_id
            )
        ).all()
    found: dict[tuple[str, int | None], dict] = {
        (asset, None): prov for asset, prov in (story or {}).items()
    }
    for number, provs in scene_rows:
        found.update({(asset, number): prov for asset, prov in provs.items()})
    return found


def story_history(engine: sa.Engine, instance: dg.DagsterInstance, story_id: str) -> list[dict]:
    """Every audit_log row of the story, oldest first, with model / prompt_version (AI rows)
    or the runless materialization (user edits) that Dagster recorded for it."""
    with db_op("story_history", story_id=story_id) as op, engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.story_id == story_id)
                .order_by(audit_log.c.id)
            ).mappings()
        ]
        known = conn.execute(
            sa.select(sa.func.count()).where(stories.c.story_id == story_id)
        ).scalar_one()
        op.rows = len(rows)
    if not rows and not known:
        raise StoryNotFound(f"story_id {story_id!r} not found")
    by_run: dict[tuple[str, str], dict] = {}
    by_audit_id: dict[int, dg.EventLogRecord] = {}
    for asset in sorted({r["asset"] for r in rows}):
        for record in _materializations(instance, asset, story_id):
            meta = _metadata(record)
            if record.run_id:
                by_run[(asset, record.run_id)] = meta
            for audit_id in meta.get("audit_ids") or []:
                by_audit_id[int(audit_id)] = record
    latest_ai = {
        (r["asset"], r["field"], r["scene_number"]): r["id"] for r in rows if r["source"] == "ai"
    }
    provenance = _provenance(engine, story_id)
    history = []
    for r in rows:
        entry = {**r, "at": r["at"].isoformat(), **dict.fromkeys(RUN_FACTS)}
        entry.update(lineage=None, materialization_id=None)
        if r["source"] == "ai":
            run_meta = by_run.get((r["asset"], r["run_id"]))
            if run_meta is not None:
                entry.update({k: run_meta.get(k) or None for k in RUN_FACTS}, lineage="event_log")
            elif latest_ai[(r["asset"], r["field"], r["scene_number"])] == r["id"]:
                # No event (run on another instance, or a failed step): the row's provenance
                # still describes the latest AI value.
                prov = provenance.get((r["asset"], r["scene_number"]))
                if prov:
                    entry.update({k: prov.get(k) for k in RUN_FACTS}, lineage="provenance")
        elif r["id"] in by_audit_id:
            entry.update(
                lineage="runless_materialization",
                materialization_id=by_audit_id[r["id"]].storage_id,
            )
        history.append(entry)
    return history
