"""The nine story assets, materialized by one multi-asset step.

Each asset keeps its own key, lineage, code version, checks and per-story materializations,
but one step runs them all for every story in the run: each story's chain as its own
coroutine, every story in flight together under the process-wide provider limits. A story
waits only for its own previous step (not for the slowest story of a batch), and a story
that fails fails alone: the others are materialized, it is marked failed (in Postgres and,
as the step then fails, as a failed partition in the UI)."""

import asyncio
import concurrent.futures
import logging
import queue
from typing import Any, NamedTuple

import dagster as dg

from storygen_dagster.defs.partitions import story_partitions
from storygen_dagster.defs.resources import (
    ImageServiceResource,
    ModerationResource,
    ObjectStoreResource,
    PictureReviewerResource,
    StoryDatabase,
    StoryLLMResource,
)
from storygen_dagster.defs.runner import (
    FRESH_TAG,
    NEW_SEED_TAG,
    OVERWRITE_TAG,
    STALE_ONLY_TAG,
    story_ids,
    tag_is_set,
)
from storygen_dagster.defs.story.checks import CHECK_SPECS, evaluation, selected_checks
from storygen_dagster.defs.story.failures import story_failed_message
from storygen_dagster.defs.story.metadata import materialization
from storygen_dagster.defs.story.specs import SPECS
from storygen_dagster.domain.checks import DEFAULT_BLOCKLIST
from storygen_dagster.domain.printing import PrintSettings
from storygen_dagster.engine import (
    Built,
    CheckOutcome,
    RunOptions,
    StageError,
    StoryDeps,
    StoryEngine,
)
from storygen_dagster.instance import pool_storage_connections
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import repository as repo

log = logging.getLogger("storygen.pipeline")


@dg.multi_asset(
    name="story_assets",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    partitions_def=story_partitions,
    # A backfill of any size becomes runs of at most STORYGEN_STORIES_PER_RUN stories, each one
    # step with its stories in flight together: the run queue and workers take them in parallel.
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().stories_per_run),
    can_subset=True,
    # One pool for every provider-calling step, so dagster.yaml can cap them together.
    pool="providers",
)
def story_assets(
    context: dg.AssetExecutionContext,
    db: StoryDatabase,
    objects: ObjectStoreResource,
    llm: StoryLLMResource,
    images: ImageServiceResource,
    moderation: ModerationResource,
    reviewer: PictureReviewerResource,
):
    """Every selected story asset for every story in the run (see the module docstring)."""
    # A run launched by the daemon has its own instance: pool its event-log connections too.
    pool_storage_connections(context.instance)
    ids = story_ids(context)
    engine = db.engine()
    store = objects.store()
    settings = get_settings()
    deps = StoryDeps(
        engine=engine,
        store=store,
        llm=llm.client(engine),
        images=images.client(engine, store),
        size=images.size(),
        budget=images.prompt_budget(),
        blocklist=tuple(settings.content_blocklist or ()) or DEFAULT_BLOCKLIST,
        moderation=moderation.client(),
        printing=PrintSettings.from_settings(settings),
        reviewer=reviewer.client(engine),
        max_redraws=reviewer.redraws(),
    )
    options = RunOptions(
        by=f"run:{context.run.run_id}",
        assets=frozenset(k.to_user_string() for k in context.selected_asset_keys),
        checks=selected_checks(context),
        fresh=tag_is_set(context, FRESH_TAG),
        stale_only=tag_is_set(context, STALE_ONLY_TAG),
        overwrite=tag_is_set(context, OVERWRITE_TAG),
        new_seed=tag_is_set(context, NEW_SEED_TAG),
        review_all=settings.review == "story",
    )
    events: queue.SimpleQueue = queue.SimpleQueue()
    story_engine = StoryEngine(deps, options, _Reporter(events))

    recorded: set[str] = set()

    async def one(sid: str) -> Any:
        try:
            return await story_engine.run(sid)
        except Exception as exc:  # this story stops; the others go on
            # Recorded now, not when the batch ends: `storygen status` and the request
            # lifecycle see it at once, and a kill later in the batch cannot lose it. With the
            # database gone for longer than its grace it is recorded at the end instead.
            try:
                status, error = await asyncio.to_thread(
                    _record_failure, engine, options.by, sid, exc
                )
            except Exception:
                log.warning("story failure not recorded yet", extra={"story_id": sid})
            else:
                recorded.add(sid)
                events.put(_Failed(sid, status, error))
            return exc

    async def main() -> list:
        return await asyncio.gather(*(one(sid) for sid in ids), return_exceptions=True)

    # The stories run in a worker thread; this generator yields each outcome as it arrives, so
    # the UI shows every story's progress during a long batch and nothing reported is lost
    # when the step fails at the end (events logged with context.log_event are only flushed
    # at the op's next yield).
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stories") as pool:
        running = pool.submit(lambda: asyncio.run(main()))
        running.add_done_callback(lambda _: events.put(_DONE))
        while (outcome := events.get()) is not _DONE:
            if isinstance(outcome, Built):
                yield materialization(outcome, _input_pointers(context.instance, outcome))
            elif isinstance(outcome, _Failed):
                context.log.error(story_failed_message(*outcome))
            else:
                yield evaluation(outcome)
        outcomes = running.result()
    failed: dict[str, str] = {}
    for sid, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            if sid in recorded:
                failed[sid] = _error_text(outcome)
            else:
                failed[sid] = _record_failure(engine, options.by, sid, outcome)[1]
    context.log.info(
        f"{len(ids) - len(failed)} of {len(ids)} stories done"
        + (f"; failed: {', '.join(sorted(failed))}" if failed else "")
    )
    if failed:
        # Per-story failure inside one step (dagster-io/dagster#17836 has no per-partition
        # result): the stories that succeeded are materialized above, and failing the step
        # now marks the rest of the range's partitions FAILED.
        raise dg.Failure(
            description=f"{len(failed)} of {len(ids)} stories failed (the others are "
            "materialized): " + "; ".join(f"{sid}: {err}" for sid, err in failed.items()),
            metadata={"failed_story_ids": dg.MetadataValue.json(sorted(failed))},
        )


_DONE = object()


class _Failed(NamedTuple):
    story_id: str
    status: str
    error: str


class _Reporter:
    """Engine outcomes, handed to the step's generator (which yields them as Dagster events)
    as they happen."""

    def __init__(self, events: queue.SimpleQueue):
        self.events = events

    def built(self, outcome: Built) -> None:
        self.events.put(outcome)

    def checked(self, outcome: CheckOutcome) -> None:
        self.events.put(outcome)


def _input_pointers(instance: dg.DagsterInstance, outcome: Built) -> dict[str, int]:
    """The storage id of each input's latest materialization for the story: with the input
    data versions, what Dagster's staleness needs for a partitioned dependency. Upstream
    values built earlier in this step are stored already (each yielded event is written
    before the generator resumes)."""
    pointers = {}
    for asset in outcome.inputs:
        record = instance.get_latest_data_version_record(
            dg.AssetKey(asset), False, partition_key=outcome.story_id
        )
        if record is not None:
            pointers[asset] = record.storage_id
    return pointers


def _error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, StageError) else f"story_assets: {type(exc).__name__}: {exc}"


def _record_failure(engine, by: str, sid: str, exc: Exception) -> tuple[str, str]:
    error = _error_text(exc)
    status = exc.held_as if isinstance(exc, StageError) and exc.hold else "failed"
    log.error("story failed", extra={"story_id": sid, "error": error, "status": status})
    repo.mark_failed(engine, sid, error, by, status=status)
    return status, error
