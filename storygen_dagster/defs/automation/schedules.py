"""nightly_stories: every pending or failed-but-retryable request, launched as a batch (runs of
at most STORYGEN_STORIES_PER_RUN adjacent partitions, which the run queue and workers take in
parallel), so nothing waits more than a day."""

import dagster as dg

from storygen_dagster.defs.automation.launches import RUN_KEY_TAG, accept, request_run_tags
from storygen_dagster.defs.jobs import storybook_job
from storygen_dagster.defs.partitions import (
    RANGE_END,
    RANGE_START,
    STORY_PARTITIONS_NAME,
    contiguous_ranges,
    ensure_partitions,
)
from storygen_dagster.defs.resources import StoryDatabase
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import requests as queue

_settings = get_settings()


@dg.schedule(
    job=storybook_job,
    cron_schedule=_settings.nightly_cron,
    execution_timezone=_settings.nightly_timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Pending and retryable failed requests, as range runs of at most "
    "STORYGEN_STORIES_PER_RUN stories.",
)
def nightly_stories(context: dg.ScheduleEvaluationContext, db: StoryDatabase):
    engine = db.engine()
    settings = get_settings()
    rows = queue.read_requests(
        engine,
        statuses=("pending", "failed"),
        limit=10_000,
        max_attempts=settings.request_max_attempts,
    )
    accepted = {sid: row for row, sid in accept(engine, rows, by="schedule:nightly_stories")}
    if not accepted:
        return dg.SkipReason(f"no pending or retryable requests ({len(rows)} read)")
    instance = context.instance
    ensure_partitions(instance, list(accepted))
    ordered = instance.get_dynamic_partitions(STORY_PARTITIONS_NAME)
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    run_requests, launches = [], []
    for group in contiguous_ranges(ordered, list(accepted), settings.stories_per_run):
        run_key = f"nightly-{tick}-{group[0]}-{group[-1]}"
        launches += [(accepted[sid].id, sid, run_key) for sid in group]
        run_requests.append(
            dg.RunRequest(
                run_key=run_key,
                tags={
                    RANGE_START: group[0],
                    RANGE_END: group[-1],
                    RUN_KEY_TAG: run_key,
                    "storygen/source": "nightly",
                    **request_run_tags(len(group)),
                },
            )
        )
    queue.mark_queued(engine, launches, from_statuses=("pending", "failed"))
    return run_requests
