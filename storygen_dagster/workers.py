"""What Celery workers reconstruct: the resolved celery job from the project's Definitions
(above definitions.py, so defs/ never imports the entry point)."""

import dagster as dg

from storygen_dagster.definitions import defs


def celery_job_for_workers() -> dg.JobDefinition:
    return defs.resolve_job_def("storybook_celery_job")
