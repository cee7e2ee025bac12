"""Run-level facts the story step reads: which stories, and the run's tags."""

import dagster as dg

from storygen_dagster.domain.ids import InvalidStoryId, validate_story_id

# A run tagged storygen/fresh=true bypasses the provider call cache (`storygen run --fresh`).
FRESH_TAG = "storygen/fresh"
# A new locked image seed for the story (`storygen run --new-seed`); --fresh alone keeps it.
NEW_SEED_TAG = "storygen/new-seed"
# Only the values whose input fingerprints changed are regenerated (`storygen run --stale-only`).
STALE_ONLY_TAG = "storygen/stale-only"
# AI values replace user edits (`storygen run --overwrite-user-edits`); by default edits stay.
OVERWRITE_TAG = "storygen/overwrite-user-edits"

# The console shows INFO and up; DEBUG events stay in the event log for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def console_config(level: str) -> dict:
    """Run config for Dagster's console logger at `level` (the event log keeps every event)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def tag_is_set(context: dg.AssetExecutionContext, tag: str) -> bool:
    return context.run.tags.get(tag, "").lower() in ("1", "true", "yes")


def story_ids(context: dg.AssetExecutionContext) -> list[str]:
    """The run's partition keys, each checked: keys added by hand in the UI skip the CLI's check."""
    keys = list(context.partition_keys)
    try:
        return [validate_story_id(k) for k in keys]
    except InvalidStoryId as exc:
        raise dg.Failure(description=f"partition key rejected: {exc}") from exc
