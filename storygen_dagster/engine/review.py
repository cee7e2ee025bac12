"""The review gate: a story that needs a person's approval stops after its text (structured
story, visual profile, base style, scene moments) and no picture is paid for until a reviewer
approves it. The gate sits in the engine, so every way a run starts (the request sensor, the
nightly schedule, `storygen run`, a backfill from the UI) respects it."""

from __future__ import annotations

import asyncio
import logging

from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.vocabulary import MOMENTS, STRUCTURED
from storygen_dagster.storage import reads, reviews

log = logging.getLogger("storygen.pipeline")


async def needs_review(run: StoryRun, sid: str) -> bool:
    if run.options.review_all:
        return True
    if await asyncio.to_thread(reviews.state, run.engine, sid) is not None:
        return True  # once held, a story keeps going through review
    request = (await asyncio.to_thread(reads.load_requests, run.engine, [sid])).get(sid)
    return bool(request and request.review)


async def held(run: StoryRun, sid: str) -> bool:
    """True when the story must stop before its pictures: it waits for review (now, or again
    with the text this run wrote after a rejection). Not a failure: the run succeeds and the
    story's status is `awaiting_review`."""
    if not await needs_review(run, sid):
        run.check(sid, MOMENTS, "approved", [], blocking=False)
        return False
    found = await asyncio.to_thread(reviews.state, run.engine, sid)
    if found is not None and found["state"] == "approved":
        run.check(sid, MOMENTS, "approved", [], blocking=False)
        return False
    state = await asyncio.to_thread(
        reviews.hold, run.engine, sid, regenerated=run.selected(STRUCTURED)
    )
    why = (
        "awaiting review: no picture until a reviewer approves the text"
        if state == "awaiting"
        else "rejected: waiting for the text to be written again with the reviewer's note"
    )
    log.info("story held for review", extra={"story_id": sid, "review_state": state})
    run.check(sid, MOMENTS, "approved", [why], blocking=False)
    return True
