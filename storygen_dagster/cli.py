"""`storygen`: demo, request, run, status, edit, audit."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click
import dagster as dg
from pydantic import ValidationError

from storygen_dagster.cli_context import Context
from storygen_dagster.cli_lineage import audit, checked_story_id, edit
from storygen_dagster.cli_review import approve, reject, review
from storygen_dagster.domain.ids import story_id_for
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.logs import configure_logging
from storygen_dagster.settings import get_settings
from storygen_dagster.storage.db import EXIT_DATABASE_UNREACHABLE


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "request"
        got = (
            f" (got {err['input']!r})"
            if "input" in err and not isinstance(err["input"], dict)
            else ""
        )
        parts.append(f"{field}: {err['msg']}{got}")
    return "invalid request: " + "; ".join(parts)


def parse_request(raw: str, source: str) -> StoryRequest:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{source} is not valid JSON: {exc}") from exc
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


def _story_rows(ctx: Context, story_ids: list[str]) -> list[dict]:
    from storygen_dagster.storage.reads import story_overview

    frame = story_overview(ctx.engine)
    found = frame[frame["story_id"].isin(story_ids)].set_index("story_id").to_dict("index")
    return [
        {
            "story_id": sid,
            "title": found[sid]["title"] if sid in found else None,
            "scenes": int(found[sid]["scenes"]) if sid in found else 0,
            "book": found[sid]["book"] if sid in found else None,
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


def _generate(
    ctx: Context,
    requests: list[StoryRequest],
    as_json: bool,
    *,
    run_tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
) -> None:
    from storygen_dagster.console import Console, redactor, spend_by_story
    from storygen_dagster.definitions import defs
    from storygen_dagster.engine.vocabulary import ASSETS
    from storygen_dagster.pipeline import materialize_stories
    from storygen_dagster.storage.db import exit_if_database_lost, mask_url
    from storygen_dagster.storage.repository import register_request

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
            defs,
            ctx.instance(),
            ids,
            tags=tags,
            assets=assets,
            on_event=console.on_event,
            console_level="DEBUG" if verbose else "CRITICAL",
        )
        rows = _story_rows(ctx, ids)
        spent_after = spend_by_story(ctx.engine, ids)
    success = all(o.success for o in outcomes)
    console.report_failures(rows, success)
    if as_json:
        payload = {
            "stories": [{k: r[k] for k in ("story_id", "title", "scenes", "book")} for r in rows],
            "database_url": mask_url(ctx.url),
            "runs": [o.run_id for o in outcomes],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        console.summary(rows, spent_before, spent_after)
    if not success:
        failed = [r["story_id"] for r in rows if r["status"] != "succeeded"]
        raise click.ClickException(f"generation failed for: {', '.join(failed) or 'some stories'}")


class DatabaseUnreachable(click.ClickException):
    exit_code = EXIT_DATABASE_UNREACHABLE


class StorygenGroup(click.Group):
    """Turns a lost or unreachable database, wherever a command meets it, into one error
    line naming the (masked) database URL."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort):
                raise
            from storygen_dagster.storage.db import is_connection_error

            if not is_connection_error(exc):
                raise
            raise DatabaseUnreachable(_unreachable_message(ctx.obj, exc)) from exc


def _unreachable_message(obj: Context | None, exc: BaseException) -> str:
    from storygen_dagster.storage.db import mask_url

    settings = obj.settings if obj is not None else get_settings()
    url = getattr(obj, "_url", None) or settings.database_url
    where = mask_url(url) if url else f"embedded server in {settings.home_dir / 'pgdata'}"
    detail = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"the database is unreachable ({where}): {detail.strip()}"


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
    settings = get_settings()
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

    _generate(ctx, demo_requests(count), as_json)


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
        raw = sys.stdin.read()
    else:
        try:
            raw = path.read_text()
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror}") from exc
    parsed = parse_request(raw, str(path))
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
    _generate(ctx, [parsed], as_json)


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
@click.pass_obj
def run(
    ctx: Context,
    story_id: str,
    as_json: bool,
    fresh: bool,
    stale_only: bool,
    overwrite_user_edits: bool,
) -> None:
    """Re-materialize every asset of an existing story (cached provider calls are reused)."""
    from storygen_dagster.defs.runner import FRESH_TAG, OVERWRITE_TAG, STALE_ONLY_TAG
    from storygen_dagster.storage.reads import load_requests
    from storygen_dagster.storage.staleness import stale_assets, stale_items

    checked_story_id(story_id)
    check_providers(ctx.settings)
    requests = load_requests(ctx.engine, [story_id])
    if story_id not in requests:
        raise click.ClickException(
            f"story_id {story_id!r} not found; add it with `storygen request`"
        )
    request = requests[story_id].model_copy(update={"story_id": story_id})
    flags = {FRESH_TAG: fresh, STALE_ONLY_TAG: stale_only, OVERWRITE_TAG: overwrite_user_edits}
    tags = {tag: "true" for tag, on in flags.items() if on}
    assets = None
    if stale_only:
        assets = stale_assets(stale_items(ctx.engine, story_id))
        if not assets:
            click.echo(f"{story_id}: nothing is stale")
            return
        if not as_json:
            click.echo(f"{story_id}: refreshing {', '.join(assets)}")
    _generate(ctx, [request], as_json, run_tags=tags, assets=assets)


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
    """Stories with their status, scene count and book; with STORY_ID also what is stale."""
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
        click.echo(frame.drop(columns=["updated_at"]).to_string(index=False))
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
        click.echo(frame.drop(columns=["updated_at"]).to_string(index=False))


main.add_command(edit)
main.add_command(audit)
for command in (review, approve, reject):
    main.add_command(command)


@main.command()
@click.option("--port", default=3000, show_default=True, help="Webserver port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Webserver host.")
@click.pass_obj
def dev(ctx: Context, port: int, host: str) -> None:
    """Run the Dagster UI and daemon (sensors, schedules, run queue) on the project's instance."""
    from storygen_dagster.recovery import InstanceBusy, end_orphaned_runs, instance_owner

    instance = ctx.instance()  # embedded Postgres up, migrated, dagster.yaml written
    try:
        with instance_owner(ctx.url):
            # After a hard kill of the previous storygen dev: end the runs it left in flight,
            # so the run queue drains and the request reconciler retries their requests.
            for run in end_orphaned_runs(instance):
                click.echo(f"ended run {run.run_id} ({run.status.value}): its process is gone")
            _dagster_dev(port, host)
    except InstanceBusy as exc:
        raise click.ClickException(str(exc)) from exc


def _dagster_dev(port: int, host: str) -> None:
    import signal
    import subprocess

    # The checkout's workspace.yaml when run from it; the installed module otherwise.
    workspace = Path("workspace.yaml")
    target = (
        ["-w", str(workspace)] if workspace.exists() else ["-m", "storygen_dagster.definitions"]
    )
    cmd = [sys.executable, "-m", "dagster", "dev", *target, "-p", str(port), "-h", host]
    click.echo(f"Dagster UI: http://{host}:{port}  (Ctrl-C stops it)")
    # dagster dev ignores SIGTERM; it stops on SIGINT. A background shell may have handed us
    # SIGINT ignored, so the child gets the default handler back (only a preexec_fn can).
    proc = subprocess.Popen(
        cmd,
        env=os.environ.copy(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    raise SystemExit(proc.returncode if proc.returncode and proc.returncode > 0 else 0)


@main.group()
def dbt() -> None:
    """The dbt_metadata analytics models (schema `analytics`)."""


@dbt.command("build")
@click.pass_obj
def dbt_build(ctx: Context) -> None:
    """Build and test every dbt model through Dagster (recorded in the asset lineage)."""
    from storygen_dagster.definitions import defs
    from storygen_dagster.defs.dbt.project import apply_dbt_env
    from storygen_dagster.pipeline import QUIET

    apply_dbt_env(ctx.url)
    result = defs.resolve_job_def("analytics_job").execute_in_process(
        instance=ctx.instance(),
        raise_on_error=False,
        run_config=QUIET,
        tags={"storygen/source": "cli"},
    )
    if not result.success:
        raise click.ClickException(f"dbt build failed (run {result.run_id}); see the log above")
    click.echo(f"dbt build succeeded (run {result.run_id}): models in schema analytics")


if __name__ == "__main__":
    main()
