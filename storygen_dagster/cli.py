"""`storygen`: demo, request, run, status; edit and audit (cli_lineage), dev and dbt (cli_ops)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import click
import dagster as dg
from pydantic import ValidationError
from pydantic_settings import SettingsError

from storygen_dagster.cli_context import Context, StorygenGroup
from storygen_dagster.cli_generate import (
    check_providers,
    decode_request,
    generate,
    parse_request,
)
from storygen_dagster.cli_lineage import audit, checked_story_id, edit
from storygen_dagster.cli_ops import dbt, dev
from storygen_dagster.cli_review import approve, reject, review
from storygen_dagster.logs import configure_logging
from storygen_dagster.settings import get_settings, settings_error


@click.group(cls=StorygenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also print every DB operation line and Dagster's run and step events.",
)
@click.pass_context
def main(click_ctx: click.Context, verbose: bool) -> None:
    """storygen: illustrated children's storybooks as Dagster assets."""
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as exc:
        raise click.ClickException(settings_error(exc)) from None
    # Without -v: warnings as plain lines; story progress and errors come from the console
    # (storygen_dagster/console.py). With -v: every log line, and Dagster's events.
    configure_logging(
        settings.log_format, settings.log_level, None if verbose else "WARNING", verbose=verbose
    )
    # Dagster's beta/preview notices (backfill_policy) are for developers, not CLI users.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    click_ctx.obj = Context()


@main.command()
@click.option(
    "--stories",
    "count",
    default=3,
    show_default=True,
    type=click.IntRange(1, 500),
    help="How many example stories.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def demo(ctx: Context, count: int, as_json: bool) -> None:
    """Generate example stories end to end and print where each book is."""
    from storygen_dagster.domain.examples import demo_requests

    generate(ctx, demo_requests(count), as_json)


@main.command()
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON request ('-' for standard input).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Insert into story_requests for the sensor/schedule instead of running now.",
)
@click.option("--priority", default=0, show_default=True, help="With --enqueue: higher first.")
@click.option("--by", "requested_by", default="cli", show_default=True, help="requested_by.")
@click.option("--review", "hold", is_flag=True, help="Hold the story for approval before pictures.")
@click.pass_obj
def request(
    ctx: Context,
    path: Path,
    as_json: bool,
    enqueue: bool,
    priority: int,
    requested_by: str,
    hold: bool,
) -> None:
    """Validate a story request, add its partition and generate the book."""
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror}") from exc
    parsed = parse_request(decode_request(data, str(path)), str(path))
    if hold:
        parsed = parsed.model_copy(update={"review": True})
    if enqueue:
        from storygen_dagster.storage.requests import enqueue as insert_request

        request_id = insert_request(
            ctx.engine,
            parsed.model_dump(mode="json", exclude_none=True),
            story_id=parsed.story_id,
            requested_by=requested_by,
            priority=priority,
        )
        result = {"request_id": request_id, "story_id": parsed.story_id, "status": "pending"}
        click.echo(
            json.dumps(result)
            if as_json
            else f"queued request {request_id} for story {parsed.story_id}: the "
            "story_request_sensor picks it up (storygen dev), or nightly_stories"
        )
        return
    generate(ctx, [parsed], as_json)


@main.command()
@click.argument("story_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--fresh", is_flag=True, help="Bypass the provider call cache: pay for new calls.")
@click.option(
    "--stale-only",
    is_flag=True,
    help="Regenerate only what `status STORY_ID` lists as stale (e.g. after an edit).",
)
@click.option(
    "--overwrite-user-edits",
    is_flag=True,
    help="Let AI values replace fields a user edited (kept by default).",
)
@click.option(
    "--new-seed",
    is_flag=True,
    help="Draw a new image seed for the story (--fresh alone keeps it): new sheet and pictures.",
)
@click.pass_obj
def run(
    ctx: Context,
    story_id: str,
    as_json: bool,
    fresh: bool,
    stale_only: bool,
    overwrite_user_edits: bool,
    new_seed: bool,
) -> None:
    """Re-materialize every asset of an existing story (cached provider calls are reused)."""
    from storygen_dagster.defs.runner import FRESH_TAG, NEW_SEED_TAG, OVERWRITE_TAG, STALE_ONLY_TAG
    from storygen_dagster.storage.reads import load_requests
    from storygen_dagster.storage.staleness import stale_assets, stale_items

    checked_story_id(story_id)
    if new_seed and stale_only:
        raise click.UsageError("--new-seed redraws every picture: use it without --stale-only")
    check_providers(ctx.settings)
    requests = load_requests(ctx.engine, [story_id])
    if story_id not in requests:
        raise click.ClickException(
            f"story_id {story_id!r} not found; add it with `storygen request`"
        )
    request = requests[story_id].model_copy(update={"story_id": story_id})
    flags = {
        FRESH_TAG: fresh,
        STALE_ONLY_TAG: stale_only,
        OVERWRITE_TAG: overwrite_user_edits,
        NEW_SEED_TAG: new_seed,
    }
    tags = {tag: "true" for tag, on in flags.items() if on}
    assets = None
    if stale_only:
        assets = stale_assets(stale_items(ctx.engine, story_id))
        if not assets:
            click.echo(f"{story_id}: nothing is stale")
            return
        if not as_json:
            click.echo(f"{story_id}: refreshing {', '.join(assets)}")
    generate(ctx, [request], as_json, run_tags=tags, assets=assets)


@main.command()
@click.argument("story_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--outdated",
    is_flag=True,
    help="List stories built with an older prompt version or another model than today's.",
)
@click.pass_obj
def status(ctx: Context, story_id: str | None, as_json: bool, outdated: bool) -> None:
    """Stories with their status, scene count and books (HTML, PDF, EPUB); with STORY_ID also
    what is stale."""
    from storygen_dagster.providers.factory import current_models
    from storygen_dagster.storage.reads import story_overview
    from storygen_dagster.storage.staleness import outdated_stories, stale_items

    if outdated:
        rows = outdated_stories(ctx.engine, current_models(ctx.settings))
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        for row in [] if as_json else rows:
            click.echo(f"{row['story_id']}: " + "; ".join(row["reasons"]))
        if not rows and not as_json:
            click.echo("every story is built with the current prompts and models")
        return
    if story_id is not None:
        checked_story_id(story_id)
    frame = story_overview(ctx.engine, story_id)
    if story_id is not None and frame.empty:
        raise click.ClickException(f"story_id {story_id!r} not found")
    frame["updated_at"] = frame["updated_at"].astype(str)
    if story_id is not None:
        record = frame.to_dict("records")[0]
        record["stale"] = stale_items(ctx.engine, story_id)
        if as_json:
            click.echo(json.dumps(record, indent=2, default=str))
            return
        _status_table(frame)
        for item in record["stale"]:
            scene = f" scene {item['scene_number']}" if item["scene_number"] else ""
            click.echo(f"  stale: {item['asset']}{scene} ({item['reason']})")
        if not record["stale"]:
            click.echo("  nothing stale")
        return
    if as_json:
        click.echo(frame.to_json(orient="records", indent=2))
    elif frame.empty:
        click.echo("no stories yet: try `storygen demo`")
    else:
        _status_table(frame)


def _status_table(frame) -> None:
    """The stories' table, then each story's three files (too long for table columns)."""
    from storygen_dagster.console import book_files

    click.echo(frame.drop(columns=["updated_at", "book", "pdf", "epub"]).to_string(index=False))
    width = max(len(s) for s in frame["story_id"])
    click.echo("books:")
    for row in frame.to_dict("records"):
        for i, path in enumerate(book_files(row)):
            click.echo(f"  {row['story_id'] if i == 0 else '':<{width}}  {path}")


main.add_command(edit)
main.add_command(audit)
main.add_command(dev)
main.add_command(dbt)
for command in (review, approve, reject):
    main.add_command(command)


if __name__ == "__main__":
    main()
