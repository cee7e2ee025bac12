"""One scene's picture: drawn from the composed prompt, checked (decodes, size, not blank),
then reviewed (issue 16) and, while the review fails and redraws are left
(STORYGEN_MAX_REDRAWS), drawn again with the reviewer's fix folded into the prompt. Every
call goes through the call cache, ledger and per-story budget; a redraw (or its review) the
budget refuses ends the redraws, and the last reviewed picture is kept, flagged. Each round's
verdict is stored, and each redraw is an audit row naming the picture it replaced and why."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from storygen_dagster.domain.images import ImageCheckError, inspect_png, thumbnail_jpeg
from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.picture_review import Verdict, fold_fix
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.vocabulary import IMAGES, REVIEW_CHECK
from storygen_dagster.providers.base import GeneratedImage, ImageRejected
from storygen_dagster.providers.calls import BudgetExceeded
from storygen_dagster.providers.reviewer import Reviewed, ReviewSubject
from storygen_dagster.storage.picture_reviews import ReviewRound, record_round


@dataclass
class Drawn:
    """What the scene ends with: the picture kept, its prompt, and its review."""

    image: GeneratedImage
    prompt: str
    uri: str
    sha256: str
    verdict: Verdict | None = None  # None: no reviewer configured
    redraws: int = 0
    replaced: str | None = None  # the sha256 of the picture the last redraw replaced
    stopped: str = ""  # why redraws ended before a pass ("" when they did not)
    review_provenance: list[Provenance] = field(default_factory=list)  # the review's calls
    # The calls of the pictures redraws replaced (the kept picture's is the scene's own).
    replaced_provenance: list[Provenance] = field(default_factory=list)


async def _draw(run: StoryRun, sid: str, number: int, prompt: str, seed: int, sheet: bytes):
    """The checked picture, or the problem with it (as a string)."""
    try:
        image = await run.deps.images.generate_image(
            prompt,
            run.call(sid, IMAGES, number),
            width=run.width,
            height=run.height,
            seed=seed,
            reference=sheet,
        )
    except ImageRejected as exc:  # the provider checked it already (and did not cache it)
        return f"scene {number}: {exc}"
    try:
        await asyncio.to_thread(inspect_png, image.png, width=run.width, height=run.height)
    except ImageCheckError as exc:
        return f"scene {number}: {exc}"
    return image


async def _store(run: StoryRun, sid: str, png: bytes) -> tuple[str, str]:
    store = run.deps.store
    key = store.key_for("images", sid, png, ".png")
    uri = await asyncio.to_thread(store.put, key, png)
    return uri, key.rsplit("/", 1)[1].removesuffix(".png")


def _fix(verdict: Verdict) -> str:
    """The reviewer's fix, or (a model that gave none) what failed, as an instruction."""
    return verdict.suggested_fix or "; ".join(
        f"make sure {c.replace('_', ' ')}" for c in verdict.failed
    )


async def _record(
    run: StoryRun, sid: str, number: int, n: int, drawn: Drawn, reviewed: Reviewed, why: str
) -> None:
    v, p = reviewed.verdict, reviewed.provenance
    row = ReviewRound(
        story_id=sid,
        scene_number=number,
        round=n,
        image_sha256=drawn.sha256,
        passed=v.passed,
        safety_failed=v.safety_failed,
        verdicts={c: {"passed": ok, "reason": r} for c, (ok, r) in v.criteria.items()},
        suggested_fix=v.suggested_fix,
        reviewer=v.reviewer,
        model=v.model,
        prompt_version=p.prompt_version,
        prompt_tokens=p.prompt_tokens,
        completion_tokens=p.completion_tokens,
        cost_usd=p.cost_usd,
        cached=p.cached,
        replaced=drawn.replaced if n else None,
        why=why,
    )
    await asyncio.to_thread(record_round, run.engine, row, run.options.by)


async def draw_reviewed(
    run: StoryRun,
    sid: str,
    number: int,
    prompt: str,
    seed: int,
    sheet: bytes,
    subject: ReviewSubject,
) -> Drawn | str:
    image = await _draw(run, sid, number, prompt, seed, sheet)
    if isinstance(image, str):
        return image
    drawn = Drawn(image, prompt, *await _store(run, sid, image.png))
    reviewer = run.deps.reviewer
    if reviewer is None:
        return drawn
    why, previous = "", None
    for n in range(run.deps.max_redraws + 1):
        try:
            reviewed = await reviewer.review(
                drawn.image.png, subject, run.call(sid, REVIEW_CHECK, number)
            )
        except BudgetExceeded as exc:
            if previous is None:  # the first picture must have a verdict: the story stops
                raise
            # A redraw nobody reviewed is not kept: back to the reviewed (flagged) picture.
            drawn.image, drawn.prompt, drawn.uri, drawn.sha256, drawn.replaced = previous
            drawn.replaced_provenance.pop()
            drawn.redraws -= 1
            drawn.stopped = f"the redraw's review stopped by the budget: {exc}"
            return drawn
        drawn.verdict = reviewed.verdict
        drawn.review_provenance.append(reviewed.provenance)
        await _record(run, sid, number, n, drawn, reviewed, why)
        if reviewed.verdict.passed:
            return drawn
        if n == run.deps.max_redraws:
            break
        why = reviewed.verdict.reasons()
        fixed = fold_fix(prompt, _fix(reviewed.verdict), run.deps.budget, n + 1)
        try:
            again = await _draw(run, sid, number, fixed, seed, sheet)
        except BudgetExceeded as exc:
            drawn.stopped = f"redraw stopped by the budget: {exc}"
            return drawn
        if isinstance(again, str):
            drawn.stopped = f"the redraw was not usable: {again}"
            return drawn
        previous = (drawn.image, drawn.prompt, drawn.uri, drawn.sha256, drawn.replaced)
        drawn.replaced = drawn.sha256
        drawn.replaced_provenance.append(drawn.image.provenance)
        drawn.image, drawn.prompt = again, fixed
        drawn.uri, drawn.sha256 = await _store(run, sid, again.png)
        drawn.redraws += 1
    drawn.stopped = f"still failing after {drawn.redraws} redraw(s)"
    return drawn


async def scene_row(
    run: StoryRun, sid: str, number: int, text: str, fingerprint: str, seed: int, drawn: Drawn
) -> dict:
    """The scene's row as stored (its provenance: the image call's)."""
    png = drawn.image.png
    thumb = await asyncio.to_thread(thumbnail_jpeg, png, (160, 120)) if number == 1 else b""
    prov = drawn.image.provenance.model_copy(
        update={"input_fingerprint": fingerprint, "seed": seed}
    )
    return {
        "story_id": sid,
        "scene_number": number,
        "text": text,
        "image_prompt": drawn.prompt,
        "image_uri": drawn.uri,
        "image_sha256": drawn.sha256,
        "image_seed": seed,
        "provenance": prov.model_dump(),
        "thumbnail": thumb,
    }
