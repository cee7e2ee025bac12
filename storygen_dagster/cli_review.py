"""`storygen review list|serve`, `storygen approve` and `storygen reject`: the review gate
from the command line (STORYGEN_REVIEW=story, or a request with `review: true`)."""

from __future__ import annotations

import json

import click

from storygen_dagster.cli_context import Context
from storygen_dagster.cli_lineage import checked_story_id

_NEXT = {
    "approved": "pictures and the book follow (story_review_sensor launches the run)",
    "rejected": "the text is written again with the note, then waits for review again",
}


@click.group()
def review() -> None:
    """Stories awaiting review: list them, or serve the approval page."""


@review.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def review_list(ctx: Context, as_json: bool) -> None:
    """Stories waiting for a reviewer, oldest first, with their scenes."""
    from storygen_dagster.storage.reviews import awaiting

    rows = awaiting(ctx.engine)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no story is awaiting review")
        return
    for row in rows:
        again = f", round {row['round']} (last note: {row['note']})" if row["round"] > 1 else ""
        click.echo(f"{row['story_id']}: {row['title']!r}, {len(row['scenes'])} scenes{again}")
        for scene in row["scenes"]:
            click.echo(f"  {scene['scene_number']}. {scene['text']}")
            click.echo(f"     moment: {scene['moment'] or '-'}")


@review.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.pass_obj
def review_serve(ctx: Context, host: str, port: int) -> None:
    """The approval page for reviewers (decisions need STORYGEN_REVIEW_TOKEN)."""
    import uvicorn

    from storygen_dagster.review_app.app import create_app

    token = ctx.settings.review_token
    if token is None or not token.get_secret_value():
        raise click.ClickException(
            "STORYGEN_REVIEW_TOKEN is not set: the page refuses every decision without it"
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}, not only this machine", err=True)
    app = create_app(ctx.engine, ctx.instance(), token.get_secret_value())
    click.echo(f"review page on http://{host}:{port}/ (Ctrl+C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _decide(ctx: Context, story_id: str, decision: str, by: str, note: str | None) -> None:
    from storygen_dagster.reviewing import decide
    from storygen_dagster.storage.reviews import ReviewError
    from storygen_dagster.storage.writes import StoryNotFound

    checked_story_id(story_id)
    try:
        made = decide(ctx.engine, ctx.instance(), story_id, decision, by, note)
    except (ReviewError, StoryNotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    if made.changed:
        click.echo(f"{story_id}: {decision} by {made.by}; {_NEXT[decision]}")
    else:
        click.echo(f"{story_id}: already {decision}, nothing changed")


@click.command()
@click.argument("story_id")
@click.option("--by", required=True, help="Who approves (recorded in the audit log).")
@click.option("--note", help="An optional note for the audit log.")
@click.pass_obj
def approve(ctx: Context, story_id: str, by: str, note: str | None) -> None:
    """Approve a story awaiting review: its pictures and book are made next."""
    _decide(ctx, story_id, "approved", by, note)


@click.command()
@click.argument("story_id")
@click.option("--by", required=True, help="Who rejects (recorded in the audit log).")
@click.option("--note", required=True, help="What to change: the guidance for the new text.")
@click.pass_obj
def reject(ctx: Context, story_id: str, by: str, note: str) -> None:
    """Reject a story awaiting review: its text is written again following the note."""
    _decide(ctx, story_id, "rejected", by, note)
