"""What `demo`, `request` and `run` share: a request parsed with errors that name the field,
the providers checked before anything is written, and the batch generated with the console's
progress and summary."""

from __future__ import annotations

import json

import click
from pydantic import ValidationError

from storygen_dagster.cli_context import Context
from storygen_dagster.domain.ids import story_id_for
from storygen_dagster.domain.models import StoryRequest

# How much of a refused value an error line repeats: a 10 MB prompt was echoed whole.
ECHO_CHARS = 80


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "request"
        got = ""
        if "input" in err and not isinstance(err["input"], dict):
            shown = repr(err["input"])
            if len(shown) > ECHO_CHARS:
                shown = f"{shown[:ECHO_CHARS]}... ({len(shown)} characters)"
            got = f" (got {shown})"
        parts.append(f"{field}: {err['msg']}{got}")
    return "invalid request: " + "; ".join(parts)


def decode_request(data: bytes, source: str) -> str:
    """JSON is UTF-8 whatever the locale (a byte-order mark, as some editors write, is
    accepted); a file in another encoding was a UnicodeDecodeError traceback."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{source} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.end]!r}):"
            " save the request as UTF-8"
        ) from None


def parse_request(raw: str, source: str) -> StoryRequest:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{source} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise click.ClickException(f"{source} is not a request: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise click.ClickException(
            f"{source}: a request is one JSON object, got {type(data).__name__}"
        )
    try:
        request = StoryRequest.model_validate(data)
    except ValidationError as exc:
        raise click.ClickException(format_validation_error(exc)) from exc
    if request.story_id is None:
        request = request.model_copy(update={"story_id": story_id_for(request.content())})
    return request


def story_rows(ctx: Context, story_ids: list[str]) -> list[dict]:
    from storygen_dagster.storage.reads import story_overview

    frame = story_overview(ctx.engine)
    found = frame[frame["story_id"].isin(story_ids)].set_index("story_id").to_dict("index")
    return [
        {
            "story_id": sid,
            "title": found[sid]["title"] if sid in found else None,
            "scenes": int(found[sid]["scenes"]) if sid in found else 0,
            "book": found[sid]["book"] if sid in found else None,
            "pdf": found[sid]["pdf"] if sid in found else None,
            "epub": found[sid]["epub"] if sid in found else None,
            "status": found[sid]["status"] if sid in found else "unknown",
            "error": found[sid]["error"] if sid in found else None,
        }
        for sid in story_ids
    ]


def check_providers(settings) -> None:
    """A real provider without its key stops here, before any row is written or run started."""
    from storygen_dagster.providers.factory import ProviderConfigError, check_settings

    try:
        check_settings(settings)
    except ProviderConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def generate(
    ctx: Context,
    requests: list[StoryRequest],
    as_json: bool,
    *,
    run_tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
) -> None:
    from storygen_dagster.console import Console, redactor, spend_by_story
    from storygen_dagster.engine.vocabulary import ASSETS
    from storygen_dagster.pipeline import materialize_stories
    from storygen_dagster.storage.db import describe_database, mask_url
    from storygen_dagster.storage.outages import exit_if_database_lost
    from storygen_dagster.storage.repository import register_request
    from storygen_dagster.story_definitions import build_story_definitions

    check_providers(ctx.settings)
    verbose = bool(click.get_current_context().find_root().params.get("verbose"))
    ids = [r.story_id for r in requests if r.story_id]  # parse_request always sets one
    console = Console(ids, len(assets or ASSETS), redactor(ctx.settings))
    # A database that goes away mid-batch is waited out for the outage grace; past it this
    # ends the command with one error line instead of hanging in Dagster's storage retries.
    with exit_if_database_lost(ctx.url):
        for request in requests:
            assert request.story_id is not None  # parse_request always sets one
            register_request(ctx.engine, request.story_id, request, by="cli")
        spent_before = spend_by_story(ctx.engine, ids)
        tags = {"storygen/source": "cli", **(run_tags or {})}
        console.start()
        # Progress comes from the run's events (console.on_event); Dagster's own console lines
        # (run and step events, captured log lines) only with -v.
        outcomes = materialize_stories(
            # Built now, so the providers are the ones this command's settings name. The story
            # job alone: the dbt assets and automation only cost import time here.
            build_story_definitions(),
            ctx.instance(),
            ids,
            tags=tags,
            assets=assets,
            on_event=console.on_event,
            console_level="DEBUG" if verbose else "CRITICAL",
        )
        rows = story_rows(ctx, ids)
        spent_after = spend_by_story(ctx.engine, ids)
    success = all(o.success for o in outcomes)
    console.report_failures(rows, success)
    if as_json:
        payload = {
            "stories": [
                {k: r[k] for k in ("story_id", "title", "scenes", "book", "pdf", "epub")}
                for r in rows
            ],
            "database_url": mask_url(ctx.url),
            "database": describe_database(ctx.url),
            "runs": [o.run_id for o in outcomes],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        console.summary(rows, spent_before, spent_after)
    if not success:
        failed = [r["story_id"] for r in rows if r["status"] != "succeeded"]
        raise click.ClickException(f"generation failed for: {', '.join(failed) or 'some stories'}")
