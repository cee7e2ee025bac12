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

_WHY = {
    "awaiting": "awaiting review: no picture until a reviewer approves the text",
    "rejected": "rejected: waiting for the text to be written again with the reviewer's note",
}


async def review_state(run: StoryRun, sid: str) -> str | None:
    """None when the story needs no review, else its state (a story never held yet that
    needs review: 'awaiting')."""
    found = await asyncio.to_thread(reviews.state, run.engine, sid)
    if found is not None:
        return found["state"]  # once held, a story keeps going through review
    if run.options.review_all:
        return "awaiting"
    request = (await asyncio.to_thread(reads.load_requests, run.engine, [sid])).get(sid)
    return "awaiting" if request and request.review else None


async def check_approved(run: StoryRun, sid: str) -> None:
    """The `approved` check on what is stored (checks executed alone): nothing is held."""
    state = await review_state(run, sid)
    run.check(sid, MOMENTS, "approved", [_WHY[state]] if state in _WHY else [], blocking=False)


async def held(run: StoryRun, sid: str) -> bool:
    """True when the story must stop before its pictures: it waits for review (now, or again
    with the text this run wrote after a rejection). Not a failure: the run succeeds and the
    story's status is `awaiting_review`."""
    if await review_state(run, sid) in (None, "approved"):
        run.check(sid, MOMENTS, "approved", [], blocking=False)
        return False
    state = await asyncio.to_thread(
        reviews.hold, run.engine, sid, regenerated=run.selected(STRUCTURED)
    )
    log.info("story held for review", extra={"story_id": sid, "review_state": state})
    run.check(sid, MOMENTS, "approved", [_WHY[state]], blocking=False)
    return True
