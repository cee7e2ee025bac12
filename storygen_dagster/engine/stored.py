"""Checks on what is stored, with no provider call and no write: every selected check when
checks are executed alone (the UI's "Execute checks"), and `up_to_date` after a story's chain."""

from __future__ import annotations

import asyncio

from storygen_dagster.domain.assets import models_by_asset
from storygen_dagster.domain.checks import (
    prompt_budget_problems,
    required_field_problems,
    scene_count_problems,
    story_texts,
)
from storygen_dagster.domain.images import ImageCheckError, inspect_png
from storygen_dagster.engine.book import content_safety
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.illustrations import illustrations_reviewed
from storygen_dagster.engine.likeness import character_consistent
from storygen_dagster.engine.outcomes import StageError
from storygen_dagster.engine.print_books import check_stored_preflight
from storygen_dagster.engine.review import check_approved
from storygen_dagster.engine.vocabulary import (
    ASSETS,
    IMAGES,
    REVIEW_CHECK,
    SHEET,
    STORY_FIELDS,
    STRUCTURED,
)
from storygen_dagster.storage import reads
from storygen_dagster.storage.staleness import out_of_date


async def up_to_date(run: StoryRun, sid: str) -> None:
    """WARN per asset: what of this story is out of date, and why."""
    if not any(run.check_selected(a, "up_to_date") for a in ASSETS):
        return
    models = models_by_asset(run.deps.llm.model, run.deps.images.model)
    found = await asyncio.to_thread(out_of_date, run.engine, sid, models)
    for asset in ASSETS:
        run.check(sid, asset, "up_to_date", found.get(asset, []), blocking=False)


async def check_stored(run: StoryRun, sid: str) -> None:
    """Every selected check on the story's stored values. A story never generated has nothing
    stored to check (and nothing is marked failed)."""
    stored = await asyncio.to_thread(reads.load_story_field, run.engine, [sid], "story_meta")
    if sid not in stored:
        return
    scenes = await run.scenes(sid)
    numbers = [int(r["scene_number"]) for r in scenes]
    failures: list[StageError] = []

    def check(asset: str, name: str, found: list[str], **kw) -> None:
        try:
            run.check(sid, asset, name, found, **kw)
        except StageError as exc:
            failures.append(exc)

    # Before the story is parsed: a stored story whose scenes do not match its meta does
    # not parse, and this check is what should say so.
    check(STRUCTURED, "scene_count", scene_count_problems(stored[sid]["scene_count"], numbers))
    if failures:
        raise failures[0]
    story = await run.story(sid)
    check(STRUCTURED, "required_fields", required_field_problems(story))
    for name in STORY_FIELDS:
        value = (await asyncio.to_thread(reads.load_story_field, run.engine, [sid], name)).get(sid)
        if value is not None:
            check(name, "required_fields", required_field_problems(story, **{name: value}))
    prompts = {int(r["scene_number"]): r["image_prompt"] for r in scenes if r["image_prompt"]}
    check(IMAGES, "prompt_budget", prompt_budget_problems(prompts, run.deps.budget))
    if run.check_selected(IMAGES, "images_valid"):
        check(IMAGES, "images_valid", await _bad_images(run, scenes))
    sheet = await run.sheet(sid)
    if sheet and run.check_selected(SHEET, "images_valid"):
        check(SHEET, "images_valid", await _bad_images(run, [{**sheet, "scene_number": 0}]))
    await character_consistent(run, sid)
    if run.check_selected(IMAGES, REVIEW_CHECK):  # the stored verdicts; no provider call
        try:
            await illustrations_reviewed(run, sid)
        except StageError as exc:
            failures.append(exc)
    texts = story_texts(
        story,
        {int(r["scene_number"]): r["moment"] for r in scenes},
        {int(r["scene_number"]): r["image_prompt"] for r in scenes},
    )
    try:
        await content_safety(run, sid, texts)
    except StageError as exc:
        failures.append(exc)
    await check_approved(run, sid)
    await check_stored_preflight(run, sid)
    await up_to_date(run, sid)
    if failures:
        raise failures[0]


async def _bad_images(run: StoryRun, scenes: list[dict]) -> list[str]:
    """Problems of the stored pictures (`scene_number` 0: the character sheet)."""
    bad = []
    for r in scenes:
        uri = r.get("image_uri") or r.get("uri")
        if not uri:
            continue
        try:
            png = await asyncio.to_thread(run.deps.store.get, uri)
            await asyncio.to_thread(inspect_png, png, width=run.width, height=run.height)
        except (ImageCheckError, OSError) as exc:
            where = f"scene {r['scene_number']}" if r["scene_number"] else "sheet"
            bad.append(f"{where}: {exc}")
    return bad
