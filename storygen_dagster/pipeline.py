"""Materializing stories through Dagster from code (the CLI and tests): ensure partitions, then
one in-process run per contiguous range of the wanted partition keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg

from storygen_dagster.defs.partitions import STORY_PARTITIONS_NAME
from storygen_dagster.domain.ids import validate_story_id

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


# The console shows INFO and up; DEBUG events stay in the event log for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def console_config(level: str) -> dict:
    """Run config for Dagster's console logger at `level` (the event log keeps every event)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


@dataclass
class RunOutcome:
    run_id: str
    story_ids: list[str]
    success: bool


def missing_partitions(instance: dg.DagsterInstance, story_ids: list[str]) -> list[str]:
    """The validated ids, in order and once each, that are not partitions yet."""
    for sid in story_ids:
        validate_story_id(sid)
    existing = set(instance.get_dynamic_partitions(STORY_PARTITIONS_NAME))
    return [sid for sid in dict.fromkeys(story_ids) if sid not in existing]


def ensure_partitions(instance: dg.DagsterInstance, story_ids: list[str]) -> None:
    missing = missing_partitions(instance, story_ids)
    if missing:
        instance.add_dynamic_partitions(STORY_PARTITIONS_NAME, missing)


def contiguous_ranges(
    ordered_keys: Sequence[str], wanted: list[str], max_size: int | None = None
) -> list[list[str]]:
    """Group `wanted` into runs of keys adjacent in the partition order, so one run covers
    each group exactly (a range run takes every key between its start and end); with
    `max_size`, no group is longer (STORYGEN_STORIES_PER_RUN: runs the queue spreads)."""
    wanted_set = set(wanted)
    groups: list[list[str]] = []
    current: list[str] = []
    for key in ordered_keys:
        if key in wanted_set:
            current.append(key)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    if max_size is None:
        return groups
    return [g[i : i + max_size] for g in groups for i in range(0, len(g), max_size)]


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
