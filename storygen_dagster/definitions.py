import dagster as dg
from dagster_dbt import DbtCliResource

from storygen_dagster.defs import catalog
from storygen_dagster.defs.automation import review, schedules, sensors
from storygen_dagster.defs.celery import storybook_celery_job
from storygen_dagster.defs.dbt import assets as dbt_assets
from storygen_dagster.defs.dbt.project import dbt_executable, dbt_project
from storygen_dagster.defs.jobs import storybook_job
from storygen_dagster.defs.story import assets as story_assets
from storygen_dagster.defs.story.check_reports import check_report_job
from storygen_dagster.story_definitions import story_resources


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([story_assets, catalog, dbt_assets]),
        jobs=[
            storybook_job,
            storybook_celery_job,
            dbt_assets.analytics_job,
            review.review_decision_job,
            check_report_job,
        ],
        sensors=[
            sensors.story_request_sensor,
            sensors.story_run_started_sensor,
            sensors.story_run_succeeded_sensor,
            sensors.story_run_failed_sensor,
            catalog.catalog_automation,
            review.story_review_sensor,
        ],
        schedules=[schedules.nightly_stories, dbt_assets.analytics_schedule],
        resources={
            "dbt": DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable()),
            **story_resources(resources),
        },
        # Steps share one process: the multiprocess executor costs seconds per step here.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
