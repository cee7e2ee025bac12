"""`storygen edit STORY_ID --character-sheet FILE`: a user's picture of the cast replaces the
story's character sheet. The file is checked before anything is stored (size, PNG or JPEG that
decodes, not blank); a good one goes into the object store, becomes the user's (AI re-runs keep
it) and makes every scene stale, so `storygen run STORY_ID --stale-only` redraws them from it."""

from __future__ import annotations

from pathlib import Path

import click

from storygen_dagster.cli_context import Context


def read_sheet(ctx: Context, path: Path) -> bytes:
    """The file as the PNG to store, or a ClickException naming the file and what is wrong."""
    from storygen_dagster.domain.images import ImageCheckError, checked_sheet

    limit = ctx.settings.sheet_max_bytes
    try:
        size = path.stat().st_size
        if size > limit:  # refused before it is read
            raise ImageCheckError(
                f"{path}: {size:,} bytes is over the {limit:,}-byte limit for a character sheet "
                "(STORYGEN_SHEET_MAX_BYTES)"
            )
        png = checked_sheet(
            path.read_bytes(),
            str(path),
            max_bytes=limit,
            width=ctx.settings.image_width,
            height=ctx.settings.image_height,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from exc
    except ImageCheckError as exc:
        raise click.ClickException(f"--character-sheet {exc}; nothing was stored") from exc
    return png


def store_sheet(ctx: Context, story_id: str, png: bytes, by: str) -> list[dict]:
    """The audit rows of the change (none when the story has this sheet already)."""
    from storygen_dagster.defs.stores import ObjectStoreResource
    from storygen_dagster.storage import sheets
    from storygen_dagster.storage.reads import story_overview
    from storygen_dagster.storage.repository import StoryNotFound

    # Before the object is written: an unknown story must leave nothing behind. (A story
    # deleted between here and the update below leaves an unreferenced content-addressed object.)
    if story_overview(ctx.engine, story_id).empty:
        raise click.ClickException(f"story_id {story_id!r} not found")
    store = ObjectStoreResource().store()
    uri = store.put(store.key_for("images", story_id, png, ".png"), png)
    try:
        rows = sheets.set_user_sheet(ctx.engine, story_id, uri, by)
    except StoryNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    return [
        {
            "id": r["id"],
            "asset": r["asset"],
            "field": r["field"],
            "scene_number": None,
            "old_value_sha256": r["old_value_sha256"],
            "new_value_sha256": r["new_value_sha256"],
        }
        for r in rows
    ]
