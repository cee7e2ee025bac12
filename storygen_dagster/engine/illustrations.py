"""The illustrations_reviewed check (issue 16), per story: each scene's latest verdict on the
picture it holds now and the redraws it took, read back from picture_reviews (so a run that
redrew some scenes and a check executed alone say the same). A picture still failing the
safety criterion holds the story as `needs_review`: never published."""

from __future__ import annotations

import asyncio

from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.picture_review import CRITERIA
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.outcomes import StageError
from storygen_dagster.engine.vocabulary import IMAGES, REVIEW_CHECK
from storygen_dagster.storage.picture_reviews import current_verdicts


def unsafe_message(scenes: list[int]) -> str:
    return (
        f"scene(s) {', '.join(map(str, scenes))}: the picture failed the safety review: the "
        "story needs a person's review and is not published"
    )


async def illustrations_reviewed(
    run: StoryRun,
    sid: str,
    stopped: dict[int, str] | None = None,
    calls: list[Provenance] | None = None,
) -> None:
    """Evaluate the check (when selected) and hold the story on a safety failure (always).
    `stopped`: why a scene's redraws ended this run; `calls`: this run's review calls."""
    reviewer = run.deps.reviewer
    rows = [r for r in await run.scenes(sid) if r["image_uri"]]
    found = await asyncio.to_thread(current_verdicts, run.engine, sid)
    problems, unsafe = [], []
    for r in rows:
        n = int(r["scene_number"])
        review = found.get(n)
        if review is None:
            if reviewer is not None:
                problems.append(f"scene {n}: the picture has no review")
            continue
        if not review["passed"]:
            failed = [c for c in CRITERIA if not review["verdicts"].get(c, {}).get("passed", True)]
            reasons = "; ".join(f"{c}: {review['verdicts'][c]['reason']}" for c in failed)
            why = (stopped or {}).get(n) or f"after {review['round']} redraw(s)"
            problems.append(f"scene {n} flagged ({why}): {reasons}")
        if review["safety_failed"]:
            unsafe.append(n)
    calls = calls or []
    facts = {
        "reviewer": reviewer.name if reviewer else "none",
        "model": reviewer.model if reviewer else "none",
        "verdicts": {
            str(n): {c: [v["passed"], v["reason"]] for c, v in review["verdicts"].items()}
            for n, review in sorted(found.items())
        },
        "redraws": {str(n): int(review["round"]) for n, review in sorted(found.items())},
        "flagged": sorted(n for n, review in found.items() if not review["passed"]),
        "unsafe": unsafe,
        "review_calls": len(calls),
        "review_cached_calls": sum(p.cached for p in calls),
        "review_tokens": sum(p.prompt_tokens + p.completion_tokens for p in calls),
        "review_cost_usd": round(sum(p.cost_usd for p in calls), 6),
    }
    if unsafe:
        problems.insert(0, unsafe_message(unsafe))
    run.check(
        sid,
        IMAGES,
        REVIEW_CHECK,
        problems,
        hold=True,
        held_as="needs_review",
        blocking=bool(unsafe),
        severity="error" if unsafe else None,
        facts=facts,
    )
    if unsafe:  # the check was not selected: the story is held all the same
        raise StageError(
            sid,
            IMAGES,
            unsafe_message(unsafe),
            check=REVIEW_CHECK,
            hold=True,
            held_as="needs_review",
        )
