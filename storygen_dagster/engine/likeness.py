"""The character_consistent check (WARN): per scene, whether its child is the story's character
sheet, reported per story with every scene's measure, its reason and who measured it in the
check's metadata.

Who measures, in order (no new provider call: the check reads what is stored):
1. a vision model's review of the picture the scene holds now (STORYGEN_VISION_MODEL, issue
   16): its `child_matches_card` verdict and reason, stored in picture_reviews by the review
   the scene's picture already had;
2. the offline painter, for a picture it drew: it knows where it put the child, so the measure
   is domain/likeness.py's colour-histogram intersection with the sheet's figure, passing at
   LIKENESS_THRESHOLD (finer than the offline reviewer's colour check, which it outranks);
3. any other stored review of the picture (the offline reviewer's colour check on a real
   model's picture);
4. nobody: the scene is listed as not measured (a real model's picture, no review)."""

from __future__ import annotations

import asyncio
from typing import Any

from storygen_dagster.domain.likeness import LIKENESS_THRESHOLD
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.vocabulary import IMAGES
from storygen_dagster.storage import sheets
from storygen_dagster.storage.picture_reviews import current_verdicts

CHECK = "character_consistent"
CRITERION = "child_matches_card"
OFFLINE_REVIEWER = "offline"


def _verdict(review: dict) -> dict[str, Any] | None:
    """The review's child_matches_card verdict as a scene's measure, or None."""
    found = (review.get("verdicts") or {}).get(CRITERION)
    if not isinstance(found, dict) or "passed" not in found:
        return None
    return {
        "passed": bool(found["passed"]),
        "reason": str(found.get("reason", "")),
        "measured_by": f"{review['reviewer']}/{review['model']}",
    }


async def _similarity(run: StoryRun, sheet_png: bytes, row: dict) -> dict[str, Any] | None:
    """The painter's measure of a picture it drew, or None when it cannot tell (a picture that
    is missing or does not decode is images_valid's to report)."""
    images = run.deps.images
    drawn_by = ((row.get("provenance") or {}).get(IMAGES) or {}).get("provider")
    if drawn_by != images.provider_name or row.get("image_seed") is None:
        return None
    try:
        png = await asyncio.to_thread(run.deps.store.get, row["image_uri"])
        score = await asyncio.to_thread(
            images.character_likeness, sheet_png, png, row["image_prompt"], int(row["image_seed"])
        )
    except (OSError, ValueError):
        return None
    if score is None:
        return None
    return {
        "passed": score >= LIKENESS_THRESHOLD,
        "similarity": score,
        "measured_by": images.provider_name,
    }


async def _measure(
    run: StoryRun, sheet_png: bytes, row: dict, review: dict | None
) -> dict[str, Any] | None:
    verdict = _verdict(review) if review else None
    if verdict is not None and review and review["reviewer"] != OFFLINE_REVIEWER:
        return verdict
    return await _similarity(run, sheet_png, row) or verdict


def _problem(number: int, m: dict[str, Any]) -> str:
    if "similarity" in m:
        return f"scene {number}: similarity {m['similarity']:.2f} < {LIKENESS_THRESHOLD}"
    return f"scene {number}: {m['measured_by']} says the child does not match: {m['reason']}"


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
    reviews = await asyncio.to_thread(current_verdicts, run.engine, sid)
    measures = await asyncio.gather(
        *(_measure(run, sheet_png, r, reviews.get(int(r["scene_number"]))) for r in rows)
    )
    by_scene = {int(r["scene_number"]): m for r, m in zip(rows, measures, strict=True)}
    measured = {n: m for n, m in by_scene.items() if m is not None}
    scores = {str(n): m["similarity"] for n, m in measured.items() if "similarity" in m}
    run.check(
        sid,
        IMAGES,
        CHECK,
        [_problem(n, m) for n, m in measured.items() if not m["passed"]],
        blocking=False,
        facts={
            "scenes": {str(n): m for n, m in measured.items()},
            "similarity": scores,
            "not_measured": [n for n, m in by_scene.items() if m is None],
            "threshold": LIKENESS_THRESHOLD,
            "measured_by": ", ".join(sorted({m["measured_by"] for m in measured.values()})),
            "sheet_sha256": found[sid]["sha256"],
        },
    )
