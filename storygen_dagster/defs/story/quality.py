"""The asset checks of the story assets: their specs, the per-run ledger that turns per-story
problems into one AssetCheckResult per check, and the checks on stored values (a check run
alone from the UI)."""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import dagster as dg

from storygen_dagster.defs.story.keys import BOOK, IMAGES, STORY_FIELDS, STRUCTURED, STYLE, VISUAL
from storygen_dagster.domain.checks import (
    prompt_budget_problems,
    required_field_problems,
    scene_count_problems,
    story_texts,
)
from storygen_dagster.domain.images import ImageCheckError, inspect_png
from storygen_dagster.storage import reads

CHECK_SPECS = [
    dg.AssetCheckSpec(
        "scene_count",
        asset=STRUCTURED,
        blocking=True,
        description="Stored scenes are exactly 1..story_meta.scene_count, and that is 3-5.",
    ),
    dg.AssetCheckSpec(
        "required_fields",
        asset=STRUCTURED,
        blocking=True,
        description="Every child profile field the prompts need is present.",
    ),
    dg.AssetCheckSpec(
        "required_fields",
        asset=VISUAL,
        blocking=True,
        description="character_prompt (and side_character_prompt when there is one).",
    ),
    dg.AssetCheckSpec(
        "required_fields",
        asset=STYLE,
        blocking=True,
        description="art_style, lighting, atmosphere, color_scheme, composition_rules.",
    ),
    dg.AssetCheckSpec(
        "prompt_budget",
        asset=IMAGES,
        blocking=True,
        description="Every composed image prompt is within STORYGEN_IMAGE_PROMPT_MAX_CHARS.",
    ),
    dg.AssetCheckSpec(
        "images_valid",
        asset=IMAGES,
        blocking=True,
        description="Every image decodes, has the configured size and is not blank.",
    ),
    dg.AssetCheckSpec(
        "content_safety",
        asset=BOOK,
        blocking=True,
        description="No blocked word in the title, scene texts, moments or image prompts; "
        "a story that fails is held (status 'held'), not published.",
    ),
]


class StoryCheckFailed(Exception):
    """A blocking check found problems: the story stops here (held for content safety)."""

    def __init__(self, check: dg.AssetCheckKey, problems: list[str], *, hold: bool = False):
        super().__init__(f"check {check.name} on {check.asset_key.to_user_string()}: {problems}")
        self.check, self.problems, self.hold = check, problems, hold


@dataclass
class CheckLedger:
    """Per check: which stories were checked and the problems each one had."""

    checked: dict[dg.AssetCheckKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    problems: dict[dg.AssetCheckKey, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def record(self, key: dg.AssetCheckKey, sid: str, problems: list[str]) -> list[str]:
        self.checked[key].add(sid)
        if problems:
            self.problems[key][sid] = problems
        return problems

    def results(self, selected: set[dg.AssetCheckKey]) -> list[dg.AssetCheckResult]:
        out = []
        for key in sorted(selected, key=lambda k: (k.asset_key.to_user_string(), k.name)):
            failed = self.problems.get(key, {})
            checked = len(self.checked.get(key, ()))
            out.append(
                dg.AssetCheckResult(
                    asset_key=key.asset_key,
                    check_name=key.name,
                    passed=not failed,
                    description=None
                    if checked
                    else "no story of this run reached this check (see the run's failures)",
                    metadata={
                        "stories_checked": dg.MetadataValue.int(checked),
                        "stories_failed": dg.MetadataValue.int(len(failed)),
                        "failed": dg.MetadataValue.json(failed),
                    },
                )
            )
        return out


def check_key(asset: dg.AssetKey, name: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(asset, name)


async def check_stored(chain, sid: str) -> None:
    """Every selected check on the story's stored values (no provider call, no write)."""
    scenes = (await asyncio.to_thread(reads.load_scenes, chain.engine, [sid])).to_dict("records")
    stored = await asyncio.to_thread(reads.load_story_field, chain.engine, [sid], "story_meta")
    if sid not in stored:
        return  # never generated: nothing stored to check (and nothing to mark failed)
    meta = stored[sid]
    numbers = [int(r["scene_number"]) for r in scenes]
    # Before the story is parsed: a stored story whose scenes do not match its meta does
    # not parse, and this check is what should say so.
    chain._check(sid, STRUCTURED, "scene_count", scene_count_problems(meta["scene_count"], numbers))
    story = await chain._story(sid)
    fields = await asyncio.to_thread(
        lambda: {f: reads.load_story_field(chain.engine, [sid], f).get(sid) for f in STORY_FIELDS}
    )
    problems: list[StoryCheckFailed] = []

    def check(asset, name, found, hold=False):
        try:
            chain._check(sid, asset, name, found, hold=hold)
        except StoryCheckFailed as exc:
            problems.append(exc)

    check(STRUCTURED, "required_fields", required_field_problems(story))
    for name, asset in STORY_FIELDS.items():
        if fields[name] is not None:
            check(asset, "required_fields", required_field_problems(story, **{name: fields[name]}))
    prompts = {int(r["scene_number"]): r["image_prompt"] for r in scenes if r["image_prompt"]}
    check(IMAGES, "prompt_budget", prompt_budget_problems(prompts, chain.budget))
    if check_key(IMAGES, "images_valid") in chain.selected_checks:
        bad = []
        for r in scenes:
            if not r["image_uri"]:
                continue
            try:
                png = await asyncio.to_thread(chain.store.get, r["image_uri"])
                await asyncio.to_thread(inspect_png, png, width=chain.width, height=chain.height)
            except (ImageCheckError, OSError) as exc:
                bad.append(f"scene {r['scene_number']}: {exc}")
        check(IMAGES, "images_valid", bad)
    texts = story_texts(
        story,
        {int(r["scene_number"]): r["moment"] for r in scenes},
        {int(r["scene_number"]): r["image_prompt"] for r in scenes},
    )
    try:
        await chain._content_safety(sid, texts)
    except StoryCheckFailed as exc:
        problems.append(exc)
    if problems:
        raise problems[0]
