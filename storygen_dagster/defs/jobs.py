import dagster as dg

from storygen_dagster.defs.partitions import story_partitions

STORY_ASSETS = dg.AssetSelection.groups("story", "images", "books")

storybook_job = dg.define_asset_job(
    "storybook_job",
    selection=STORY_ASSETS,
    partitions_def=story_partitions,
    description="Every story asset, request to book, for the selected stories.",
    tags={"storygen/pipeline": "storybook"},
)
