"""The character sheet and the locked seed of a story (stories.character_sheet_uri and
stories.image_seed): the AI's sheet (kept when a user uploaded theirs), a user's sheet, and the
one seed every picture of the story is drawn with. Each write one transaction with its audit
rows, like the other story writes."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import Provenance
from storygen_dagster.storage.audit import changed_fields, record_changes
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.story_rows import save_generated_column
from storygen_dagster.storage.tables import audit_log, stories
from storygen_dagster.storage.writes import (
    NOW,
    StoryNotFound,
    jsonb_patch,
    prov_patch,
    run_id_of,
)

ASSET = "character_sheet"
FIELD = "character_sheet_uri"


def derived_seed(story_id: str) -> int:
    """A story's first seed: fixed for the story id (a demo draws the same pictures each time),
    different between stories."""
    return int(content_hash([story_id, "image_seed"])[:8], 16) & 0x7FFFFFFF


def sheet_sha(uri: str) -> str:
    """A sheet's sha256: its object key is images/<story>/<sha256>.png."""
    return uri.rsplit("/", 1)[1].removesuffix(".png")


def load_sheets(engine: sa.Engine, story_ids: Iterable[str]) -> dict[str, dict]:
    """{story_id: {uri, sha256, seed, source}} for the stories that have a sheet."""
    ids = list(story_ids)
    query = sa.select(
        stories.c.story_id,
        stories.c.character_sheet_uri,
        stories.c.image_seed,
        stories.c.field_sources,
    ).where(stories.c.story_id.in_(ids), stories.c.character_sheet_uri.is_not(None))
    with db_op("load_sheets", story_id=",".join(ids)) as op, engine.connect() as conn:
        rows: Sequence[tuple[str, str, int | None, dict | None]] = conn.execute(query).all()
        op.rows = len(rows)
    return {
        sid: {
            "uri": uri,
            "sha256": sheet_sha(uri),
            "seed": seed,
            "source": (sources or {}).get(FIELD, "ai"),
        }
        for sid, uri, seed, sources in rows
    }


def stored_seed(engine: sa.Engine, story_id: str) -> int | None:
    with db_op("stored_seed", story_id=story_id) as op, engine.connect() as conn:
        seed = conn.execute(
            sa.select(stories.c.image_seed).where(stories.c.story_id == story_id)
        ).scalar_one_or_none()
        op.rows = 1
    return None if seed is None else int(seed)


def story_seed(engine: sa.Engine, story_id: str, by: str, *, renew: bool = False) -> int:
    """The story's locked seed: the stored one, else its derived first seed; `renew` draws a
    new random one (`storygen run --new-seed`). A change is audited."""
    with db_op("story_seed", story_id=story_id) as op, engine.begin() as conn:
        old = conn.execute(
            sa.select(stories.c.image_seed).where(stories.c.story_id == story_id).with_for_update()
        ).one_or_none()
        if old is None:
            raise StoryNotFound(f"story_id {story_id!r} has no row")
        seed = old[0] if old[0] is not None else derived_seed(story_id)
        while renew and seed == (old[0] if old[0] is not None else derived_seed(story_id)):
            seed = secrets.randbelow(0x7FFFFFFF)
        if seed != old[0]:
            op.rows = conn.execute(
                stories.update().where(stories.c.story_id == story_id).values(image_seed=seed)
            ).rowcount
            record_changes(
                conn,
                story_id=story_id,
                asset=ASSET,
                old={"image_seed": old[0]},
                new={"image_seed": seed},
                source="ai",
                updated_by=by,
                run_id=run_id_of(by),
            )
    return int(seed)


def save_sheet(
    engine: sa.Engine,
    story_id: str,
    uri: str,
    prov: Provenance,
    by: str,
    *,
    overwrite_user_edits: bool = False,
) -> bool:
    """The AI's sheet; a user's sheet is kept unless overwrite_user_edits (provenance and the
    fingerprint still record this generation). True when the sheet was written."""
    return save_generated_column(
        engine,
        story_id,
        asset=ASSET,
        column=FIELD,
        value=uri,
        prov=prov,
        by=by,
        source="ai",
        overwrite_user_edits=overwrite_user_edits,
        operation="save_character_sheet",
    )


def set_user_sheet(engine: sa.Engine, story_id: str, uri: str, by: str) -> list[dict]:
    """A user's sheet (already in the object store): owned by the user from now on (AI re-runs
    keep it). Returns the audit rows written (none when it is the sheet already there)."""
    with db_op("set_user_sheet", story_id=story_id) as op, engine.begin() as conn:
        before = conn.execute(
            sa.select(stories.c[FIELD]).where(stories.c.story_id == story_id).with_for_update()
        ).one_or_none()
        if before is None:
            raise StoryNotFound(f"story_id {story_id!r} not found")
        rows = changed_fields(
            story_id=story_id,
            asset=ASSET,
            old={FIELD: before[0]},
            new={FIELD: uri},
            source="user",
            updated_by=by,
        )
        if not rows:
            return []
        prov = Provenance(source="user", provider="user", model="upload")
        op.rows = conn.execute(
            stories.update()
            .where(stories.c.story_id == story_id)
            .values(
                {
                    FIELD: uri,
                    "field_sources": jsonb_patch(stories.c.field_sources, {FIELD: "user"}),
                    "provenance": prov_patch(stories.c.provenance, ASSET, prov),
                    "source": "user",
                    "updated_by": by,
                    "updated_at": NOW,
                }
            )
        ).rowcount
        ids: Iterable[int] = conn.execute(
            sa.insert(audit_log).returning(audit_log.c.id, sort_by_parameter_order=True), rows
        ).scalars()
        return [{**r, "id": i} for r, i in zip(rows, list(ids), strict=True)]
