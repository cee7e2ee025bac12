"""The scene stages: one moment per scene (LLM, scenes in parallel), then one picture per scene
from the composed prompt, with the story's locked seed and its character sheet as the reference
(scenes in parallel, each checked before it is stored)."""

from __future__ import annotations

import asyncio
import base64

from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.checks import prompt_budget_problems
from storygen_dagster.domain.compose import compose_image_prompt
from storygen_dagster.domain.models import BaseStyle, Provenance, VisualProfile
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.illustrations import illustrations_reviewed
from storygen_dagster.engine.likeness import character_consistent
from storygen_dagster.engine.outcomes import Built, Markdown, Uri
from storygen_dagster.engine.redraw import Drawn, draw_reviewed, scene_row
from storygen_dagster.engine.versions import (
    field_version,
    images_version,
    moments_version,
    story_version,
)
from storygen_dagster.engine.vocabulary import IMAGES, MOMENTS, SHEET, STRUCTURED, STYLE, VISUAL
from storygen_dagster.providers.reviewer import ReviewSubject
from storygen_dagster.storage import repository as repo


async def scene_moments(run: StoryRun, sid: str, story) -> None:
    import pandas as pd

    _, owned = await run.user_owned(sid)
    wanted = {
        s.scene_number: fp.scene_moment(story, s.scene_number)
        for s in story.scenes
        if "moment" not in owned.get(s.scene_number, ())
    }
    wanted = await run.scenes_to_build(sid, MOMENTS, wanted)
    if not wanted:
        return
    numbers = sorted(wanted)
    results = await asyncio.gather(
        *(run.deps.llm.generate_scene_moment(story, n, run.call(sid, MOMENTS, n)) for n in numbers)
    )
    texts = {s.scene_number: s.text for s in story.scenes}
    provs = [
        r.provenance.model_copy(update={"input_fingerprint": wanted[n]})
        for n, r in zip(numbers, results, strict=True)
    ]
    frame = pd.DataFrame(
        [
            {
                "story_id": sid,
                "scene_number": n,
                "text": texts[n],
                "moment": r.value.moment,
                "provenance": p.model_dump(),
            }
            for n, r, p in zip(numbers, results, provs, strict=True)
        ]
    )
    await asyncio.to_thread(
        repo.upsert_scene_columns,
        run.engine,
        frame,
        ["moment"],
        MOMENTS,
        run.options.by,
        overwrite_user_edits=run.options.overwrite,
    )
    stored = await run.scenes(sid)
    run.built(
        Built(
            story_id=sid,
            asset=MOMENTS,
            facts={
                "scenes": len(frame),
                "preview": Markdown(frame[["scene_number", "moment"]].to_markdown(index=False)),
            },
            provenance=provs,
            fingerprint={str(n): wanted[n] for n in numbers},
            data_version=moments_version(stored),
            by=run.options.by,
            inputs={STRUCTURED: story_version(story)},
        )
    )


async def scene_images(run: StoryRun, sid: str, story) -> None:
    import pandas as pd

    profile, style = await asyncio.gather(
        run.field(sid, "visual_profile"), run.field(sid, "base_style")
    )
    rows = await run.scenes(sid)
    if not rows or any(not r["moment"] for r in rows):
        raise LookupError(f"story {sid} is missing upstream values: moments")
    sheet = await run.sheet(sid)
    if sheet is None:
        raise LookupError(f"story {sid} is missing upstream values: {SHEET}")
    seed = await run.seed(sid)
    visual, base = VisualProfile.model_validate(profile), BaseStyle.model_validate(style)
    budget = run.deps.budget
    images = run.deps.images
    prompts = {
        r["scene_number"]: compose_image_prompt(
            base_style=base,
            setting=story.story_meta.setting_description,
            child_name=story.child_profile.name,
            visual_profile=visual,
            moment=r["moment"],
            side_character=story.side_character,
            budget=budget,
            reference=images.uses_reference,
        )
        for r in rows
    }
    run.check(sid, IMAGES, "prompt_budget", prompt_budget_problems(prompts, budget))
    wanted = {
        r["scene_number"]: fp.scene_image(story, profile, style, r["moment"], sheet["sha256"], seed)
        for r in rows
    }
    wanted = await run.scenes_to_build(sid, IMAGES, wanted)
    if not wanted:
        return
    by_number = {r["scene_number"]: r for r in rows}
    # Read once, sent with every scene (the service decides whether and how it goes).
    sheet_png = await asyncio.to_thread(run.deps.store.get, sheet["uri"])
    outcomes = await asyncio.gather(
        *(
            draw_reviewed(
                run,
                sid,
                n,
                prompts[n],
                seed,
                sheet_png,
                _subject(story, visual, by_number[n], prompts[n], sheet_png),
            )
            for n in sorted(wanted)
        )
    )
    drawn = {n: o for n, o in zip(sorted(wanted), outcomes, strict=True) if isinstance(o, Drawn)}
    problems = [o for o in outcomes if isinstance(o, str)]
    good = [
        await scene_row(run, sid, n, by_number[n]["text"], wanted[n], seed, d)
        for n, d in drawn.items()
    ]
    frame = pd.DataFrame(good)
    if good:
        await asyncio.to_thread(
            repo.upsert_scene_columns,
            run.engine,
            frame,
            ["image_prompt", "image_uri", "image_sha256", "image_seed"],
            IMAGES,
            run.options.by,
            overwrite_user_edits=run.options.overwrite,
        )
    run.check(sid, IMAGES, "images_valid", problems)
    await character_consistent(run, sid)
    if not good:
        return
    reviews = [p for d in drawn.values() for p in d.review_provenance]
    replaced = [p for d in drawn.values() for p in d.replaced_provenance]
    thumb = base64.b64encode(frame["thumbnail"].iloc[0]).decode()
    stored = await run.scenes(sid)
    run.built(
        Built(
            story_id=sid,
            asset=IMAGES,
            facts={
                "images": len(frame),
                "size": f"{run.width}x{run.height}",
                "seed": seed,
                "reference": images.reference,
                "max_prompt_chars": int(frame["image_prompt"].str.len().max()),
                "reviewer": run.deps.reviewer.name if run.deps.reviewer else "none",
                "redraws": sum(d.redraws for d in drawn.values()),
                "first_image_uri": Uri(frame["image_uri"].iloc[0]),
                "preview": Markdown(
                    f"![{sid} scene {frame['scene_number'].iloc[0]}]"
                    f"(data:image/jpeg;base64,{thumb})"
                ),
            },
            # The pictures' calls, those of pictures redrawn, then the review's.
            provenance=[Provenance.model_validate(p) for p in frame["provenance"]]
            + replaced
            + reviews,
            fingerprint={str(n): f for n, f in wanted.items()},
            data_version=images_version(stored),
            by=run.options.by,
            inputs={
                MOMENTS: moments_version(rows),
                VISUAL: field_version(profile),
                STYLE: field_version(style),
                SHEET: sheet["sha256"],
            },
        )
    )
    stopped = {n: d.stopped for n, d in drawn.items() if d.stopped}
    await illustrations_reviewed(run, sid, stopped, reviews)


def _subject(story, visual: VisualProfile, row: dict, prompt: str, sheet: bytes) -> ReviewSubject:
    side = story.side_character
    return ReviewSubject(
        scene_number=int(row["scene_number"]),
        text=row["text"],
        moment=row["moment"],
        prompt=prompt,
        child_name=story.child_profile.name,
        age=story.child_profile.age,
        card=visual.character_prompt,
        friend=visual.side_character_prompt if side.exists else "",
        sheet=sheet,
    )
