"""`storygen edit` and `storygen audit`: user edits recorded as runless materializations, and
the full history of a story from the audit log and Dagster's event log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import dagster as dg

from storygen_dagster.cli_context import Context
from storygen_dagster.domain.ids import InvalidStoryId, validate_story_id


def checked_story_id(story_id: str) -> str:
    """A STORY_ID argument checked before anything is opened (used by every command)."""
    try:
        return validate_story_id(story_id)
    except InvalidStoryId as exc:
        raise click.BadParameter(str(exc), param_hint="STORY_ID") from exc


def _set_value(raw: str) -> object:
    """--set values are text; a JSON list or object (`[...]`, `{...}`) is parsed. Numbers and
    booleans stay text and the field's contract converts them (age=5, exists=false)."""
    if raw.strip().startswith(("[", "{")):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(
                f"{raw!r} is not valid JSON: {exc}", param_hint="--set"
            ) from exc
    return raw


def _parse_sets(sets: tuple[str, ...]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise click.BadParameter(f"{item!r}: use PATH=VALUE", param_hint="--set")
        fields[path.strip()] = _set_value(raw)
    return fields


def _report_edit(ctx: Context, instance, story_id: str, changes: list[dict], by: str) -> list[str]:
    """One runless materialization per touched asset, so the lineage shows the edit."""
    assets: dict[str, list[dict]] = {}
    for change in changes:
        assets.setdefault(change["asset"], []).append(change)
    for asset, rows in assets.items():
        metadata: dict[str, dg.RawMetadataValue] = {
            "source": "user",
            "updated_by": by,
            "fields": dg.MetadataValue.json(sorted({r["field"] for r in rows})),
            "audit_ids": dg.MetadataValue.json([r["id"] for r in rows]),
        }
        numbers = {r["scene_number"] for r in rows} - {None}
        if numbers:
            metadata["scene_number"] = min(numbers)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, partition=story_id, metadata=metadata)
        )
    if changes:
        _report_up_to_date(ctx, instance, story_id)
    return list(assets)


def _report_up_to_date(ctx: Context, instance, story_id: str) -> None:
    """The story's up_to_date check per asset, now: what the edit made out of date shows in
    the UI (WARN) without a run."""
    from storygen_dagster.defs.story.check_reports import report_check_outcomes
    from storygen_dagster.engine.outcomes import CheckOutcome
    from storygen_dagster.providers.factory import current_models
    from storygen_dagster.storage.staleness import out_of_date

    found = out_of_date(ctx.engine, story_id, current_models(ctx.settings))
    outcomes = [CheckOutcome(story_id, a, "up_to_date", problems) for a, problems in found.items()]
    report_check_outcomes(
        instance, outcomes, {"storygen/story": story_id, "storygen/source": "edit"}
    )


@click.command()
@click.argument("story_id")
@click.option("--scene", "scene_number", type=int, help="Scene to edit (with --text/--moment).")
@click.option("--text", help="New text of the scene.")
@click.option("--moment", help="New visual moment of the scene.")
@click.option("--title", help="New title (stories.title and story_meta.story_title).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=VALUE",
    help="A story field, e.g. story_meta.tone=calm or child_profile.name=Mia (repeatable).",
)
@click.option(
    "--character-sheet",
    "sheet_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A PNG or JPEG of the cast that replaces the character sheet (scenes become stale).",
)
@click.option(
    "--by",
    default=lambda: os.environ.get("USER") or "cli",
    show_default="$USER or cli",
    help="Who made the edit (updated_by).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def edit(
    ctx: Context,
    story_id: str,
    scene_number: int | None,
    text: str | None,
    moment: str | None,
    title: str | None,
    sets: tuple[str, ...],
    sheet_path: Path | None,
    by: str,
    as_json: bool,
) -> None:
    """Edit a story by hand: AI re-runs keep the edit; the audit log and lineage record it."""
    from storygen_dagster.defs.partitions import STORY_PARTITIONS_NAME
    from storygen_dagster.storage.edits import EditError, edit_story
    from storygen_dagster.storage.reads import story_overview
    from storygen_dagster.storage.repository import StoryNotFound

    checked_story_id(story_id)
    fields = _parse_sets(sets)
    if story_overview(ctx.engine, story_id).empty:
        raise click.ClickException(f"story_id {story_id!r} not found")
    instance = ctx.instance()
    if not instance.has_dynamic_partition(STORY_PARTITIONS_NAME, story_id):
        raise click.ClickException(
            f"story_id {story_id!r} is not a partition of the Dagster instance: "
            f"generate it first (`storygen run {story_id}`)"
        )
    from storygen_dagster.cli_sheet import read_sheet, store_sheet

    # The file is checked before anything of the edit is written.
    sheet = read_sheet(ctx, sheet_path) if sheet_path is not None else None
    others = fields or any(v is not None for v in (scene_number, text, moment, title))
    changes: list[dict] = []
    try:
        if sheet is None or others:
            changes = edit_story(
                ctx.engine,
                story_id,
                by=by,
                scene_number=scene_number,
                text=text,
                moment=moment,
                title=title,
                fields=fields,
            )
    except (EditError, StoryNotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    if sheet is not None:
        changes += store_sheet(ctx, story_id, sheet, by)
    assets = _report_edit(ctx, instance, story_id, changes, by)
    if as_json:
        click.echo(
            json.dumps({"story_id": story_id, "changes": changes, "materialized": assets}, indent=2)
        )
    elif not changes:
        click.echo(f"{story_id}: nothing changed (the values are already as given)")
    else:
        for c in changes:
            scene = f" scene {c['scene_number']}" if c["scene_number"] is not None else ""
            old = (c["old_value_sha256"] or "-")[:8]
            click.echo(
                f"{story_id}: {c['asset']}.{c['field']}{scene} {old} -> "
                f"{c['new_value_sha256'][:8]} by {by}"
            )
        click.echo(f"recorded user materializations of: {', '.join(assets)}")


@click.command()
@click.argument("story_id")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def audit(ctx: Context, story_id: str, as_json: bool) -> None:
    """Who or what produced every field of a story, oldest change first."""
    import pandas as pd

    from storygen_dagster.history import story_history
    from storygen_dagster.storage.repository import StoryNotFound

    checked_story_id(story_id)
    try:
        history = story_history(ctx.engine, ctx.instance(), story_id)
    except StoryNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(history, indent=2))
        return
    if not history:
        click.echo(f"{story_id}: no changes recorded yet")
        return
    frame = pd.DataFrame(
        [
            {
                "at": h["at"][:19].replace("T", " "),
                "asset": h["asset"],
                "scene": "" if h["scene_number"] is None else h["scene_number"],
                "field": h["field"],
                "source": h["source"],
                # An AI row's updated_by is "run:<run_id>": the run column says it shorter.
                "by": "" if h["run_id"] else h["updated_by"] or "",
                "run": (h["run_id"] or "")[:8],
                "change": f"{(h['old_value_sha256'] or 'new')[:8]} -> "
                f"{(h['new_value_sha256'] or 'none')[:8]}",
                "model": h["model"] or "",
                "prompt": h["prompt_version"] or "",
                "note": h.get("note") or "",  # a review decision's note
            }
            for h in history
        ]
    )
    click.echo(frame.to_string(index=False))
