"""Running one async unit of work per story in a (possibly multi-partition) run: all stories in
flight together, each story's failure recorded against that story."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import dagster as dg

from storygen_dagster.domain.ids import InvalidStoryId, validate_story_id

R = TypeVar("R")
log = logging.getLogger("storygen.pipeline")


FRESH_TAG = "storygen/fresh"


def fresh_run(context: dg.AssetExecutionContext) -> bool:
    """A run tagged storygen/fresh=true bypasses the provider call cache (`storygen run
    --fresh`, or the tag set in the launchpad)."""
    return context.run.tags.get(FRESH_TAG, "").lower() in ("1", "true", "yes")


def story_ids(context: dg.AssetExecutionContext) -> list[str]:
    """The run's partition keys, each checked: keys added by hand in the UI skip the CLI's check."""
    keys = list(context.partition_keys)
    try:
        return [validate_story_id(k) for k in keys]
    except InvalidStoryId as exc:
        raise dg.Failure(description=f"partition key rejected: {exc}") from exc


def run_per_story(
    context: dg.AssetExecutionContext,
    ids: list[str],
    work: Callable[[str], Awaitable[R]],
    on_failure: Callable[[str, str], None],
) -> dict[str, R]:
    """Run `work` for every story concurrently. Failures are recorded per story through
    `on_failure`; if any story failed the step fails after the others were saved."""

    async def main() -> list[R | BaseException]:
        return await asyncio.gather(*(work(sid) for sid in ids), return_exceptions=True)

    results = asyncio.run(main())
    done: dict[str, R] = {}
    failed: dict[str, str] = {}
    for sid, result in zip(ids, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            failed[sid] = f"{context.asset_key.to_user_string()}: {type(result).__name__}: {result}"
            log.error(
                "story step failed",
                extra={
                    "story_id": sid,
                    "asset": context.asset_key.to_user_string(),
                    "error": failed[sid],
                },
            )
            on_failure(sid, failed[sid])
        else:
            done[sid] = result
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(ids)} stories failed: "
            + "; ".join(f"{sid}: {err}" for sid, err in failed.items()),
            metadata={"failed_story_ids": dg.MetadataValue.json(sorted(failed))},
        )
    return done
