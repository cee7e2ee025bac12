"""The character sheet stage: one reference picture of the cast per story, drawn with the
story's locked seed from the visual profile and the art style (after the review gate: it is a
picture, paid for like one). A sheet a user uploaded is theirs: kept, no call."""

from __future__ import annotations

import asyncio
import base64
import logging

from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.compose import character_card, compose_sheet_prompt
from storygen_dagster.domain.images import ImageCheckError, inspect_png, thumbnail_jpeg
from storygen_dagster.domain.models import BaseStyle, StructuredStory, VisualProfile
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.outcomes import Built, Markdown, StageError, Uri
from storygen_dagster.engine.versions import field_version
from storygen_dagster.engine.vocabulary import SHEET, STYLE, VISUAL
from storygen_dagster.providers.base import ImageRejected
from storygen_dagster.storage import sheets

log = logging.getLogger("storygen.pipeline")


def preview(sid: str, png: bytes, alt: str) -> Markdown:
    thumb = base64.b64encode(thumbnail_jpeg(png, (160, 120))).decode()
    return Markdown(f"![{alt} of {sid}](data:image/jpeg;base64,{thumb})")


async def character_sheet(run: StoryRun, sid: str, story: StructuredStory) -> None:
    if sheets.FIELD in (await run.user_owned(sid))[0]:
        log.info("kept the user's character sheet, no call", extra={"story_id": sid})
        return
    profile, style = await asyncio.gather(run.field(sid, VISUAL), run.field(sid, STYLE))
    seed = await run.seed(sid)
    fingerprint = fp.character_sheet(story, profile, style, seed)
    if await run.skip_current(sid, SHEET, fingerprint):
        return
    name = story.child_profile.name
    card = character_card(name, VisualProfile.model_validate(profile), story.side_character)
    prompt = compose_sheet_prompt(
        base_style=BaseStyle.model_validate(style),
        card=card,
        child_name=name,
        budget=run.deps.budget,
    )
    try:
        image = await run.deps.images.generate_image(
            prompt, run.call(sid, SHEET), width=run.width, height=run.height, seed=seed
        )
        await asyncio.to_thread(inspect_png, image.png, width=run.width, height=run.height)
    except (ImageRejected, ImageCheckError) as exc:
        # Every scene is drawn from the sheet: without a good one the story stops here.
        run.check(sid, SHEET, "images_valid", [str(exc)])
        raise StageError(sid, SHEET, f"{SHEET}: {exc}") from exc
    run.check(sid, SHEET, "images_valid", [])
    store = run.deps.store
    key = store.key_for("images", sid, image.png, ".png")
    uri = await asyncio.to_thread(store.put, key, image.png)
    prov = image.provenance.model_copy(update={"input_fingerprint": fingerprint, "seed": seed})
    await asyncio.to_thread(
        sheets.save_sheet,
        run.engine,
        sid,
        uri,
        prov,
        run.options.by,
        overwrite_user_edits=run.options.overwrite,
    )
    run.built(
        Built(
            story_id=sid,
            asset=SHEET,
            facts={
                "sheet_uri": Uri(uri),
                "seed": seed,
                "reference": run.deps.images.reference,
                "prompt_chars": len(prompt),
                "preview": await asyncio.to_thread(preview, sid, image.png, "character sheet"),
            },
            provenance=[prov],
            fingerprint=fingerprint,
            data_version=sheets.sheet_sha(uri),
            by=run.options.by,
            inputs={VISUAL: field_version(profile), STYLE: field_version(style)},
        )
    )
