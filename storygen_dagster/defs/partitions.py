"""The story partitions: one per story, keys validated before they are added, and the
contiguous ranges a run of many stories covers."""

from collections.abc import Sequence

import dagster as dg

from storygen_dagster.domain.ids import validate_story_id

# One partition per story; keys are validated story ids (domain.ids) before they are added.
STORY_PARTITIONS_NAME = "stories"
story_partitions = dg.DynamicPartitionsDefinition(name=STORY_PARTITIONS_NAME)
# The tags of a run over a range of stories (what a single-run backfill carries too).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


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
