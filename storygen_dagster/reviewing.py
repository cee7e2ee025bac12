"""Review decisions and edits as the CLI and the review page make them: the storage change
(with its audit row) first, then the Dagster record of it (a runless check evaluation of
`approved`, or a runless materialization for an edit), so lineage and the UI show it without
a run. The review sensor turns approvals and rejections into runs."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.defs.automation.review import report_decision
from storygen_dagster.storage import reviews
from storygen_dagster.storage.edits import edit_story
from storygen_dagster.storage.reviews import Decision, ReviewError


def decide(
    engine: sa.Engine,
    instance: dg.DagsterInstance,
    story_id: str,
    decision: str,
    by: str,
    note: str | None = None,
) -> Decision:
    """Approve or reject (storage.reviews.decide); a new decision is reported to Dagster."""
    made = reviews.decide(engine, story_id, decision, by, note)
    if made.changed:
        report_decision(instance, made)
    return made


def edit_in_review(
    engine: sa.Engine,
    instance: dg.DagsterInstance,
    story_id: str,
    by: str,
    *,
    scene_number: int,
    text: str | None = None,
    moment: str | None = None,
) -> list[dict]:
    """A reviewer's edit of one scene of a story awaiting review (the same write as
    `storygen edit`: kept on AI re-runs, one audit row per field, a runless materialization
    per touched asset)."""
    found = reviews.state(engine, story_id)
    if found is None or found["state"] != "awaiting":
        raise ReviewError(f"story {story_id} is not awaiting review: edit it with storygen edit")
    changes = edit_story(
        engine, story_id, by=by, scene_number=scene_number, text=text, moment=moment
    )
    by_asset: dict[str, list[dict]] = {}
    for change in changes:
        by_asset.setdefault(change["asset"], []).append(change)
    for asset, rows in by_asset.items():
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=asset,
                partition=story_id,
                metadata={
                    "source": "user",
                    "updated_by": by,
                    "scene_number": scene_number,
                    "fields": dg.MetadataValue.json(sorted({r["field"] for r in rows})),
                    "audit_ids": dg.MetadataValue.json([r["id"] for r in rows]),
                },
            )
        )
    return changes
