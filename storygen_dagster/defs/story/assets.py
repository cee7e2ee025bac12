"""The six story assets, materialized by one multi-asset step.

Each asset keeps its own key, lineage, code version, checks and per-story materializations,
but one step runs them all for every story in the run: each story's chain as its own
coroutine, every story in flight together under the process-wide provider limits. A story
waits only for its own previous step (not for the slowest story of a batch), and a story
that fails fails alone: the others are materialized, it is marked failed (in Postgres and,
as the step then fails, as a failed partition in the UI)."""

import asyncio
import logging

import dagster as dg

from storygen_dagster.defs.partitions import story_partitions
from storygen_dagster.defs.resources import (
    ImageServiceResource,
    ObjectStoreResource,
    StoryDatabase,
    StoryLLMResource,
)
from storygen_dagster.defs.runner import (
    FRESH_TAG,
    OVERWRITE_TAG,
    STALE_ONLY_TAG,
    story_ids,
    tag_is_set,
)
from storygen_dagster.defs.story.chain import StoryChain
from storygen_dagster.defs.story.keys import BOOK, IMAGES, MOMENTS, STRUCTURED, STYLE, VISUAL
from storygen_dagster.defs.story.quality import CHECK_SPECS, StoryCheckFailed
from storygen_dagster.domain.prompts import PROMPT_VERSIONS
from storygen_dagster.instance import pool_storage_connections
from storygen_dagster.providers.moderation import build_moderation
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import repository as repo

log = logging.getLogger("storygen.pipeline")

_STORY = {"group_name": "story", "kinds": {"python", "postgres"}, "skippable": True}
_IMAGES = {"group_name": "images", "kinds": {"python", "postgres", "s3"}, "skippable": True}

SPECS = [
    dg.AssetSpec(
        STRUCTURED,
        description="Child profile, side character, story meta and 3-5 scenes of text.",
        code_version=f"structured_story-{PROMPT_VERSIONS['structured_story']}",
        **_STORY,
    ),
    dg.AssetSpec(
        VISUAL,
        deps=[STRUCTURED],
        description="Character and side-character prompts, the same in every scene.",
        code_version=f"visual_profile-{PROMPT_VERSIONS['visual_profile']}",
        **_STORY,
    ),
    dg.AssetSpec(
        STYLE,
        deps=[STRUCTURED],
        description="One art style, lighting, atmosphere, palette and composition per book.",
        code_version=f"base_style-{PROMPT_VERSIONS['base_style']}",
        **_STORY,
    ),
    dg.AssetSpec(
        MOMENTS,
        deps=[STRUCTURED],
        description="Per scene, the single visual moment to draw, chosen from the story so far.",
        code_version=f"scene_moment-{PROMPT_VERSIONS['scene_moment']}",
        **_STORY,
    ),
    dg.AssetSpec(
        IMAGES,
        deps=[MOMENTS, VISUAL, STYLE],
        description="One picture per scene from base style + setting + character + moment "
        "+ side character (prompt composed in code within a length budget).",
        code_version="scene_images-v1",
        **_IMAGES,
    ),
    dg.AssetSpec(
        BOOK,
        deps=[IMAGES, STRUCTURED],
        description="The finished book: an HTML page with the title and every scene's text "
        "and picture. Held (not built) when the content-safety check fails.",
        code_version="storybook-v1",
        **_IMAGES,
    ),
]


@dg.multi_asset(
    name="story_assets",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    partitions_def=story_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
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
):
    """Every selected story asset for every story in the run (see the module docstring)."""
    # A run launched by the daemon has its own instance: pool its event-log connections too.
    pool_storage_connections(context.instance)
    ids = story_ids(context)
    engine = db.engine()
    store = objects.store()
    settings = get_settings()
    chain = StoryChain(
        context,
        engine=engine,
        store=store,
        llm=llm.client(engine),
        images=images.client(engine, store),
        size=images.size(),
        budget=images.prompt_budget(),
        blocklist=settings.content_blocklist,
        moderation=build_moderation(settings),
        fresh=tag_is_set(context, FRESH_TAG),
        stale_only=tag_is_set(context, STALE_ONLY_TAG),
        overwrite_user_edits=tag_is_set(context, OVERWRITE_TAG),
    )

    async def main() -> list:
        return await asyncio.gather(*(chain.run(sid) for sid in ids), return_exceptions=True)

    outcomes = asyncio.run(main())
    failed: dict[str, str] = {}
    for sid, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            failed[sid] = _record_failure(engine, chain.by, sid, outcome)
    yield from chain.checks.results(set(context.selected_asset_check_keys))
    context.log.info(
        f"{len(ids) - len(failed)} of {len(ids)} stories done"
        + (f"; failed: {', '.join(sorted(failed))}" if failed else "")
    )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(ids)} stories failed (the others are "
            "materialized): " + "; ".join(f"{sid}: {err}" for sid, err in failed.items()),
            metadata={"failed_story_ids": dg.MetadataValue.json(sorted(failed))},
        )


def _record_failure(engine, by: str, sid: str, exc: Exception) -> str:
    error = f"{getattr(exc, 'storygen_asset', 'story_assets')}: {type(exc).__name__}: {exc}"
    status = "failed"
    if isinstance(exc, StoryCheckFailed):
        error = f"{exc.check.asset_key.to_user_string()}: check {exc.check.name} failed: " + (
            "; ".join(exc.problems)
        )
        status = "held" if exc.hold else "failed"
    log.error("story failed", extra={"story_id": sid, "error": error, "status": status})
    repo.mark_failed(engine, sid, error, by, status=status)
    return error
