"""`StoryEngine.run(sid)`: the selected stages of one story, in order. Stories run as
concurrent coroutines in one event loop (the adapter gathers them); a failure stops only its
own story and leaves tagged with the stage it came from."""

from __future__ import annotations

import asyncio

from storygen_dagster.engine import book, print_books, review, scenes, sheet, stored, text
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.deps import RunOptions, StoryDeps
from storygen_dagster.engine.outcomes import Reporter, StageError
from storygen_dagster.engine.vocabulary import (
    ASSETS,
    BOOK,
    EPUB,
    IMAGES,
    MOMENTS,
    PDF,
    SHEET,
    STORY_FIELDS,
    STRUCTURED,
)


async def _stage(sid: str, asset: str, coro):
    """Await `coro`; any error leaves as a StageError naming the story and the stage."""
    try:
        return await coro
    except StageError:
        raise
    except Exception as exc:
        raise StageError(sid, asset, f"{asset}: {type(exc).__name__}: {exc}") from exc


class StoryEngine:
    def __init__(self, deps: StoryDeps, options: RunOptions, reporter: Reporter):
        self.run_state = StoryRun(deps, options, reporter)

    @property
    def by(self) -> str:
        return self.run_state.options.by

    async def run(self, sid: str) -> list[str]:
        """The assets built for the story. With no asset selected (checks executed alone) the
        stored values are checked instead."""
        run = self.run_state
        if not run.options.assets:
            await _stage(sid, "checks", stored.check_stored(run, sid))
            return []
        run.renders.calls_started()  # before the first await: every story counts at once
        try:
            story = await self._provider_stages(sid)
        finally:
            await run.renders.calls_done()
        if story is None:  # held for review
            return run.done.get(sid, [])
        if run.selected(BOOK):
            await _stage(sid, BOOK, book.storybook(run, sid))
        for asset in (PDF, EPUB):
            if run.selected(asset):
                await _stage(sid, asset, print_books.print_file(run, sid, asset))
        await _stage(sid, "up_to_date", stored.up_to_date(run, sid))
        return run.done.get(sid, [])

    async def _provider_stages(self, sid: str):
        """Text to pictures (every stage that calls a provider); the story, or None when it is
        held for review."""
        run = self.run_state
        if run.selected(STRUCTURED):
            await _stage(sid, STRUCTURED, text.structured_story(run, sid))
        first = next(a for a in (*ASSETS[1:], STRUCTURED) if run.selected(a))
        story = await _stage(sid, first, run.story(sid))
        fields = [f for f in STORY_FIELDS if run.selected(f)]
        results = await asyncio.gather(
            *(_stage(sid, f, text.story_field(run, sid, story, f)) for f in fields),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if run.selected(MOMENTS):
            await _stage(sid, MOMENTS, scenes.scene_moments(run, sid, story))
        if any(run.selected(a) for a in (MOMENTS, SHEET, IMAGES, BOOK, PDF, EPUB)) and await _stage(
            sid, MOMENTS, review.held(run, sid)
        ):
            return None
        if run.selected(SHEET):
            await _stage(sid, SHEET, sheet.character_sheet(run, sid, story))
        if run.selected(IMAGES):
            await _stage(sid, IMAGES, scenes.scene_images(run, sid, story))
        return story
