"""The story catalog: an asset outside the story group that takes story assets as inputs,
loaded through their IO managers (no provider call, nothing regenerated).

It keeps itself current: `eager()` requests a story's catalog row when that story's
structured_story or storybook gets a new materialization and neither is missing or in flight,
evaluated by `catalog_automation` (on by default, targeting the catalog alone, so Declarative
Automation never requests a paid story asset)."""

import dagster as dg
import pandas as pd

from storygen_dagster.defs.io_managers import POSTGRES_IO
from storygen_dagster.defs.partitions import story_partitions
from storygen_dagster.domain.models import StructuredStory
from storygen_dagster.settings import get_settings
from storygen_dagster.storage.catalog import catalog_rows


@dg.asset(
    group_name="catalog",
    kinds={"python", "postgres"},
    partitions_def=story_partitions,
    # The story assets' policy: a job selecting both has one (with two, Dagster warns on every
    # such job and uses the smaller). A catalog backfill is runs of STORYGEN_STORIES_PER_RUN.
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().stories_per_run),
    io_manager_key=POSTGRES_IO,
    code_version="story_catalog-v1",
    automation_condition=dg.AutomationCondition.eager(),
    # The book's URI, not its HTML: the catalog only points at the book.
    ins={"storybook": dg.AssetIn(metadata={"as_uri": True})},
)
def story_catalog(
    context: dg.AssetExecutionContext,
    structured_story: dict[str, StructuredStory],
    storybook: dict[str, str],
) -> pd.DataFrame:
    """One row per story: title, child, age, value taught, scene count and the book's URI."""
    # Inputs annotated as dicts arrive keyed by story for one story as for a range. In a run
    # that also materializes the story assets this step is skipped (the story step yields no
    # outputs): materialize the catalog in its own run.
    frame = catalog_rows(structured_story, storybook)
    context.log.info(f"catalog rows for {len(frame)} stories")
    return frame


catalog_automation = dg.AutomationConditionSensorDefinition(
    "catalog_automation",
    target=dg.AssetSelection.assets(story_catalog),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Keeps story_catalog current: a row per story whose book was (re)built.",
)
