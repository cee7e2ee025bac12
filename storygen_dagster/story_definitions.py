"""The story job alone, for the CLI's in-process runs (`storygen demo|request|run`).

The whole Definitions (definitions.py) also import dagster-dbt, which imports dbt-core, and the
catalog and automation modules: ~4 s of CPU before a CLI run's first provider call, for objects
the run never uses. The story assets, their job and resources are the same objects in both."""

import dagster as dg

from storygen_dagster.defs.jobs import storybook_job
from storygen_dagster.defs.resources import default_resources, with_io_managers
from storygen_dagster.defs.story import assets as story_assets


def story_resources(resources: dict | None = None) -> dict:
    return with_io_managers(resources or default_resources())


def build_story_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([story_assets]),
        jobs=[storybook_job],
        resources=story_resources(resources),
        # Steps share one process: the multiprocess executor costs seconds per step here.
        executor=dg.in_process_executor,
    )
