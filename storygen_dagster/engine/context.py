"""The state one batch shares (dependencies, options, what each story has read) and the
helpers every stage uses: reads through the storage layer, check evaluation, outcome reports."""

from __future__ import annotations

import asyncio

from storygen_dagster.domain.models import StructuredStory
from storygen_dagster.domain.plan import needs_build, user_owned
from storygen_dagster.engine.deps import RunOptions, StoryDeps
from storygen_dagster.engine.outcomes import Built, CheckOutcome, Reporter, StageError
from storygen_dagster.engine.render_gate import RenderGate
from storygen_dagster.providers.base import CallContext
from storygen_dagster.storage import reads, sheets
from storygen_dagster.storage.staleness import load_row_facts


class StoryRun:
    def __init__(self, deps: StoryDeps, options: RunOptions, reporter: Reporter):
        self.deps, self.options, self.reporter = deps, options, reporter
        self.width, self.height = deps.size
        self.done: dict[str, list[str]] = {}  # story -> assets built
        self._facts: dict[tuple[str, str], tuple[dict, dict[int, dict]]] = {}
        self._seeds: dict[str, int] = {}
        self.renders = RenderGate()

    @property
    def engine(self):
        return self.deps.engine

    def selected(self, asset: str) -> bool:
        return asset in self.options.assets

    def check_selected(self, asset: str, check: str) -> bool:
        return (asset, check) in self.options.checks

    def call(self, sid: str, asset: str, scene: int | None = None) -> CallContext:
        return CallContext(story_id=sid, asset=asset, scene_number=scene, fresh=self.options.fresh)

    # -- outcomes ------------------------------------------------------------------------------
    def built(self, outcome: Built) -> None:
        self.reporter.built(outcome)
        self.done.setdefault(outcome.story_id, []).append(outcome.asset)

    def check(
        self,
        sid: str,
        asset: str,
        name: str,
        problems: list[str],
        *,
        hold: bool = False,
        held_as: str = "held",
        blocking: bool = True,
        severity: str | None = None,
        facts: dict | None = None,
    ) -> None:
        """Report the story's evaluation of a selected check; a blocking failure stops the
        story here (held, for content safety)."""
        if not self.check_selected(asset, name):
            return
        self.reporter.checked(
            CheckOutcome(sid, asset, name, list(problems), dict(facts or {}), severity)
        )
        if problems and blocking:
            raise StageError(
                sid,
                asset,
                f"{asset}: check {name} failed: " + "; ".join(problems),
                check=name,
                problems=list(problems),
                hold=hold,
                held_as=held_as,
            )

    # -- reads ---------------------------------------------------------------------------------
    async def seed(self, sid: str) -> int:
        """The story's locked image seed, the same for its sheet and every scene (a new one
        once per run with --new-seed)."""
        if sid not in self._seeds:
            self._seeds[sid] = await asyncio.to_thread(
                sheets.story_seed, self.engine, sid, self.options.by, renew=self.options.new_seed
            )
        return self._seeds[sid]

    async def sheet(self, sid: str) -> dict | None:
        """The story's character sheet: {uri, sha256, seed, source}, or None."""
        found = await asyncio.to_thread(sheets.load_sheets, self.engine, [sid])
        return found.get(sid)

    async def story(self, sid: str) -> StructuredStory:
        stories = await asyncio.to_thread(reads.load_stories, self.engine, [sid])
        if sid not in stories:
            raise LookupError(f"story {sid} has no structured_story yet")
        return stories[sid]

    async def field(self, sid: str, name: str) -> dict:
        values = await asyncio.to_thread(reads.load_story_field, self.engine, [sid], name)
        if sid not in values:
            raise LookupError(f"story {sid} has no {name} yet")
        return values[sid]

    async def scenes(self, sid: str) -> list[dict]:
        frame = await asyncio.to_thread(reads.load_scenes, self.engine, [sid])
        return frame.to_dict("records")

    async def row_facts(self, sid: str, column: str) -> tuple[dict, dict[int, dict]]:
        """The story's stored input_fingerprints / field_sources, read once per story: a stage
        only writes its own fingerprint key, which no later stage reads, and an AI write never
        marks a field 'user', so the first read stays right for the whole chain."""
        key = (sid, column)
        if key not in self._facts:
            story, by_scene = await asyncio.to_thread(load_row_facts, self.engine, [sid], column)
            self._facts[key] = (
                story.get(sid, {}),
                {n: f for (s, n), f in by_scene.items() if s == sid},
            )
        return self._facts[key]

    async def stored_fingerprints(self, sid: str) -> tuple[dict, dict[int, dict]]:
        return await self.row_facts(sid, "input_fingerprints")

    async def skip_current(self, sid: str, asset: str, fingerprint: str) -> bool:
        """With --stale-only: the story-level value is built from these inputs already."""
        if not self.options.stale_only:
            return False
        stored, _ = await self.stored_fingerprints(sid)
        return not needs_build(fingerprint, stored.get(asset))

    async def scenes_to_build(self, sid: str, asset: str, wanted: dict[int, str]) -> dict[int, str]:
        """`wanted` (scene -> input fingerprint), less the scenes --stale-only finds current."""
        if not self.options.stale_only:
            return wanted
        _, stored = await self.stored_fingerprints(sid)
        return {n: f for n, f in wanted.items() if needs_build(f, stored.get(n, {}).get(asset))}

    async def user_owned(self, sid: str) -> tuple[set[str], dict[int, set[str]]]:
        """Fields a user edited last (kept on AI re-runs unless overwrite): their provider
        calls are skipped rather than paid for and thrown away."""
        story, scenes = await self.row_facts(sid, "field_sources")
        overwrite = self.options.overwrite
        return (
            user_owned(story, overwrite=overwrite),
            {n: user_owned(fs, overwrite=overwrite) for n, fs in scenes.items()},
        )
