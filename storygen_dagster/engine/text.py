"""The text stages: the structured story (one LLM call from the request), then the visual
profile and the base style (one call each, from the story)."""

from __future__ import annotations

import asyncio
import logging

from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.checks import required_field_problems, scene_count_problems
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.outcomes import Built
from storygen_dagster.engine.versions import field_version, story_version
from storygen_dagster.engine.vocabulary import STRUCTURED
from storygen_dagster.storage import reads, reviews
from storygen_dagster.storage import repository as repo

log = logging.getLogger("storygen.pipeline")


async def structured_story(run: StoryRun, sid: str) -> None:
    requests = await asyncio.to_thread(reads.load_requests, run.engine, [sid])
    request = requests.get(sid)
    by = run.options.by
    if request is None:
        # A partition added by hand in the UI has no request: generate from defaults.
        request = StoryRequest(story_id=sid)
        await asyncio.to_thread(repo.register_request, run.engine, sid, request, by)
    # A story a reviewer rejected is written again with their note as guidance; an approved
    # story whose text this run changes goes back to review (approval is of the text read).
    review = await asyncio.to_thread(reviews.state, run.engine, sid)
    state = review["state"] if review else None
    guidance = review["note"] if review and state == "rejected" else None
    fingerprint = fp.structured_story(request, guidance)
    if await run.skip_current(sid, STRUCTURED, fingerprint):
        return
    previous = (
        (await asyncio.to_thread(reads.load_stories, run.engine, [sid])).get(sid)
        if state in ("rejected", "approved")
        else None
    )
    result = await run.deps.llm.generate_structured_story(
        request,
        run.call(sid, STRUCTURED),
        guidance=guidance,
        previous=previous if guidance else None,
    )
    prov = result.provenance.model_copy(update={"input_fingerprint": fingerprint})
    await asyncio.to_thread(
        repo.save_structured_story,
        run.engine,
        sid,
        result.value,
        prov,
        by,
        overwrite_user_edits=run.options.overwrite,
    )
    story = await run.story(sid)
    if state == "approved" and (
        previous is None or story_version(previous) != story_version(story)
    ):
        await asyncio.to_thread(reviews.reopen, run.engine, sid)
        log.info("approved story's text changed: back to review", extra={"story_id": sid})
    numbers = [int(s["scene_number"]) for s in await run.scenes(sid)]
    run.check(
        sid, STRUCTURED, "scene_count", scene_count_problems(story.story_meta.scene_count, numbers)
    )
    run.check(sid, STRUCTURED, "required_fields", required_field_problems(story))
    meta = story.story_meta
    run.built(
        Built(
            story_id=sid,
            asset=STRUCTURED,
            facts={
                "title": meta.story_title,
                "child": f"{story.child_profile.name} ({story.child_profile.age})",
                "value_to_teach": meta.value_to_teach,
                "scenes": meta.scene_count,
                "first_scene": story.scenes[0].text,
            },
            provenance=[prov],
            fingerprint=fingerprint,
            data_version=story_version(story),
            by=by,
        )
    )


async def story_field(run: StoryRun, sid: str, story, name: str) -> None:
    """visual_profile or base_style."""
    if name in (await run.user_owned(sid))[0]:
        log.info("kept user edit, no call", extra={"story_id": sid, "asset": name})
        return
    fingerprint = fp.story_level(name, story)
    if await run.skip_current(sid, name, fingerprint):
        return
    result = await getattr(run.deps.llm, f"generate_{name}")(story, run.call(sid, name))
    prov = result.provenance.model_copy(update={"input_fingerprint": fingerprint})
    await asyncio.to_thread(
        repo.save_story_field,
        run.engine,
        sid,
        name,
        result.value.model_dump(mode="json"),
        prov,
        run.options.by,
        overwrite_user_edits=run.options.overwrite,
    )
    stored_value = await run.field(sid, name)
    run.check(sid, name, "required_fields", required_field_problems(story, **{name: stored_value}))
    run.built(
        Built(
            story_id=sid,
            asset=name,
            facts={"value": stored_value},
            provenance=[prov],
            fingerprint=fingerprint,
            data_version=field_version(stored_value),
            by=run.options.by,
            inputs={STRUCTURED: story_version(story)},
        )
    )
