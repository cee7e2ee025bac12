import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from storygen_dagster.defs.dbt.project import apply_dbt_env, dbt_project
from storygen_dagster.defs.dbt.translator import StorygenTranslator
from storygen_dagster.defs.resources import StoryDatabase


@dbt_assets(manifest=dbt_project().manifest_path, dagster_dbt_translator=StorygenTranslator())
def dbt_metadata_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, db: StoryDatabase):
    """The analysts' SQL layer (schema analytics) over the story tables."""
    apply_dbt_env(db.url())
    db.engine()  # the source tables exist (migrated) before dbt reads them
    yield from dbt.cli(["build"], context=context).stream()


analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.assets(dbt_metadata_models),
    description="Rebuild the dbt models and run their tests.",
)

# The nightly story batch starts at 02:00; the models are rebuilt after it.
analytics_schedule = dg.ScheduleDefinition(
    name="nightly_analytics",
    job=analytics_job,
    cron_schedule="0 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
