"""Materializing stories through Dagster from code (the CLI and tests): ensure partitions, then
one in-process run per contiguous range of the wanted partition keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from storygen_dagster.defs.partitions import (
    RANGE_END,
    RANGE_START,
    STORY_PARTITIONS_NAME,
    contiguous_ranges,
    ensure_partitions,
)
from storygen_dagster.defs.runner import console_config


@dataclass
class RunOutcome:
    run_id: str
    story_ids: list[str]
    success: bool


def materialize_stories(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    story_ids: list[str],
    *,
    tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
    on_event: Callable[[dg.EventLogEntry], None] | None = None,
    console_level: str = "INFO",
) -> list[RunOutcome]:
    """One run per contiguous range of `story_ids`; `assets` narrows the run to those asset
    keys (the step runs just that part of each story's chain). `on_event` sees each event of
    each run as the instance stores it (in the thread that logged it; it must not raise);
    `console_level` is the threshold of Dagster's own console lines."""
    ensure_partitions(instance, story_ids)
    job = defs.resolve_job_def("storybook_job")
    ordered = instance.get_dynamic_partitions(STORY_PARTITIONS_NAME)
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    outcomes = []
    for group in contiguous_ranges(ordered, story_ids):
        run_tags = {**(tags or {}), RANGE_START: group[0], RANGE_END: group[-1]}
        run_id = str(uuid.uuid4())
        if on_event is not None:
            # The instance calls its listeners for every event of the run as it stores it
            # (execute_in_process has no other event hook); no polling of the event log.
            instance.add_event_listener(run_id, on_event)
        try:
            result = job.execute_in_process(
                instance=instance,
                tags=run_tags,
                raise_on_error=False,
                run_config=console_config(console_level),
                asset_selection=selection,
                run_id=run_id,
            )
        finally:
            if on_event is not None:
                # add_event_listener has no counterpart: drop this run's listeners.
                getattr(instance, "_subscribers", {}).pop(run_id, None)
        outcomes.append(RunOutcome(result.run_id, group, result.success))
    return outcomes
