"""The character_consistent check (WARN): per scene, how alike its child is to the story's
character sheet, reported per story with every scene's score in the check's metadata.

Who measures, in order: the character judge when one is configured (the vision review of
issue 16, StoryDeps.character_judge); else the image service that drew the picture, when it
can (the offline painter knows where it put the child: domain/likeness.py's colour-histogram
intersection, passing at LIKENESS_THRESHOLD); else nobody, and the scene is listed as not
measured (a real model's picture without a judge)."""

from __future__ import annotations

import asyncio

from storygen_dagster.domain.likeness import LIKENESS_THRESHOLD
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.vocabulary import IMAGES
from storygen_dagster.storage import sheets

CHECK = "character_consistent"


async def _score(run: StoryRun, sid: str, sheet_png: bytes, row: dict) -> float | None:
    """The scene's similarity, or None when nobody can measure it (a picture that is missing
    or does not decode is images_valid's to report)."""
    try:
        return await _measure(run, sid, sheet_png, row)
    except (OSError, ValueError):
        return None


async def _measure(run: StoryRun, sid: str, sheet_png: bytes, row: dict) -> float | None:
    png = await asyncio.to_thread(run.deps.store.get, row["image_uri"])
    number = int(row["scene_number"])
    judge = run.deps.character_judge
    if judge is not None:
        return await judge.likeness(sheet_png, png, run.call(sid, CHECK, number))
    images = run.deps.images
    drawn_by = ((row.get("provenance") or {}).get(IMAGES) or {}).get("provider")
    if drawn_by != images.provider_name or row.get("image_seed") is None:
        return None
    return await asyncio.to_thread(
        images.character_likeness, sheet_png, png, row["image_prompt"], int(row["image_seed"])
    )


async def character_consistent(run: StoryRun, sid: str) -> None:
    if not run.check_selected(IMAGES, CHECK):
        return
    found = await asyncio.to_thread(sheets.load_sheets, run.engine, [sid])
    rows = [r for r in await run.scenes(sid) if r["image_uri"]]
    if sid not in found:
        problems = ["the story has no character sheet"] if rows else []
        run.check(sid, IMAGES, CHECK, problems, blocking=False)
        return
    sheet_png = await asyncio.to_thread(run.deps.store.get, found[sid]["uri"])
    scores = await asyncio.gather(*(_score(run, sid, sheet_png, r) for r in rows))
    by_scene = {int(r["scene_number"]): s for r, s in zip(rows, scores, strict=True)}
    problems = [
        f"scene {n}: similarity {s:.2f} < {LIKENESS_THRESHOLD}"
        for n, s in by_scene.items()
        if s is not None and s < LIKENESS_THRESHOLD
    ]
    judge = run.deps.character_judge
    run.check(
        sid,
        IMAGES,
        CHECK,
        problems,
        blocking=False,
        facts={
            "similarity": {str(n): s for n, s in by_scene.items() if s is not None},
            "not_measured": [n for n, s in by_scene.items() if s is None],
            "threshold": LIKENESS_THRESHOLD,
            "measured_by": judge.name if judge else run.deps.images.provider_name,
            "sheet_sha256": found[sid]["sha256"],
        },
    )
