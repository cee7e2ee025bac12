"""`storygen dev` (the Dagster UI and daemon on the project's instance) and `storygen dbt`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from storygen_dagster.cli_context import Context


@click.command()
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


@click.group()
def dbt() -> None:
    """The dbt_metadata analytics models (schema `analytics`)."""


@dbt.command("build")
@click.pass_obj
def dbt_build(ctx: Context) -> None:
    """Build and test every dbt model through Dagster (recorded in the asset lineage)."""
    from storygen_dagster.definitions import defs
    from storygen_dagster.defs.dbt.project import apply_dbt_env
    from storygen_dagster.defs.runner import QUIET

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
