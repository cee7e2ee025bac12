"""Past one machine: the same story assets with each step sent to Celery workers
(dagster-celery; broker and backend on Redis or RabbitMQ, given as run config)."""

import dagster as dg
from dagster_celery import celery_executor

from storygen_dagster.defs.jobs import STORY_ASSETS
from storygen_dagster.defs.partitions import story_partitions

storybook_celery_job = dg.define_asset_job(
    "storybook_celery_job",
    selection=STORY_ASSETS,
    partitions_def=story_partitions,
    executor_def=celery_executor,
    tags={"storygen/pipeline": "storybook"},
    description="storybook_job with every step on a Celery worker (run config: broker, backend).",
)
