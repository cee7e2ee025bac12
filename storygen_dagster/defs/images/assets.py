"""The picture half: scene images (composed prompt, one image call per scene) and the book."""

import asyncio
import base64

import dagster as dg
import pandas as pd

from storygen_dagster.defs.resources import (
    ImageServiceResource,
    ObjectStoreResource,
    StoryDatabase,
    StoryLLMResource,
)
from storygen_dagster.defs.runner import fresh_run, run_per_story, story_ids
from storygen_dagster.defs.story.assets import (
    COMMON,
    _by,
    _failure_recorder,
    base_style,
    provenance_metadata,
    scene_moments,
    structured_story,
    visual_profile,
)
from storygen_dagster.domain.book import Page, render_book
from storygen_dagster.domain.compose import compose_image_prompt
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.images import inspect_png, thumbnail_jpeg
from storygen_dagster.domain.models import BaseStyle, Provenance, VisualProfile
from storygen_dagster.providers.base import CallContext
from storygen_dagster.storage import repository as repo

IMAGE_COMMON = {
    **COMMON,
    "group_name": "images",
    "kinds": {"python", "postgres", "s3"},
    "pool": "images",
}


@dg.asset(
    deps=[scene_moments, visual_profile, base_style], code_version="scene_images-v1", **IMAGE_COMMON
)
def scene_images(
    context: dg.AssetExecutionContext,
    db: StoryDatabase,
    objects: ObjectStoreResource,
    images: ImageServiceResource,
    llm: StoryLLMResource,
) -> dg.MaterializeResult:
    """One picture per scene from base style + setting + character + moment + side character."""
    ids = story_ids(context)
    engine = db.engine()
    store = objects.store()
    stories = repo.load_stories(engine, ids)
    profiles = repo.load_story_field(engine, ids, "visual_profile")
    styles = repo.load_story_field(engine, ids, "base_style")
    scenes = repo.load_scenes(engine, ids)
    client = images.client(engine, store)
    fresh = fresh_run(context)
    width, height = images.size()
    budget = images.prompt_budget()
    limit = asyncio.Semaphore(llm.concurrency())
    thumbs: dict[str, bytes] = {}

    async def one(sid: str, row: dict, prompt: str) -> dict:
        ctx = CallContext(
            story_id=sid, asset="scene_images", scene_number=row["scene_number"], fresh=fresh
        )
        seed = int(content_hash([sid, row["scene_number"]])[:8], 16)
        async with limit:
            image = await client.generate_image(prompt, ctx, width=width, height=height, seed=seed)
        inspect_png(image.png, width=width, height=height)
        key = store.key_for("images", sid, image.png, ".png")
        uri = await asyncio.to_thread(store.put, key, image.png)
        if sid not in thumbs:
            thumbs[sid] = thumbnail_jpeg(image.png)
        # The bytes go out of scope here: a batch never holds all its images in memory.
        return {
            "story_id": sid,
            "scene_number": row["scene_number"],
            "text": row["text"],
            "image_prompt": prompt,
            "image_uri": uri,
            "image_sha256": key.rsplit("/", 1)[1].removesuffix(".png"),
            "provenance": image.provenance.model_dump(),
        }

    async def work(sid: str) -> pd.DataFrame:
        missing = [
            n
            for n, d in (
                ("structured_story", stories),
                ("visual_profile", profiles),
                ("base_style", styles),
            )
            if sid not in d
        ]
        rows = scenes[scenes["story_id"] == sid].to_dict("records")
        if missing or not rows or any(not r["moment"] for r in rows):
            raise LookupError(f"story {sid} is missing upstream values: {missing or 'moments'}")
        story = stories[sid]
        profile = VisualProfile.model_validate(profiles[sid])
        style = BaseStyle.model_validate(styles[sid])
        prompts = [
            compose_image_prompt(
                base_style=style,
                setting=story.story_meta.setting_description,
                child_name=story.child_profile.name,
                visual_profile=profile,
                moment=r["moment"],
                side_character=story.side_character,
                budget=budget,
            )
            for r in rows
        ]
        results = await asyncio.gather(
            *(one(sid, r, p) for r, p in zip(rows, prompts, strict=True))
        )
        frame = pd.DataFrame(results)
        await asyncio.to_thread(
            repo.upsert_scene_columns,
            engine,
            frame,
            ["image_prompt", "image_uri", "image_sha256"],
            "scene_images",
            _by(context),
        )
        return frame

    done = run_per_story(context, ids, work, _failure_recorder(context, db))
    frame = pd.concat(done.values(), ignore_index=True)
    first_sid = next(iter(done))
    thumb = base64.b64encode(thumbs[first_sid]).decode()
    return dg.MaterializeResult(
        metadata={
            "stories": dg.MetadataValue.int(len(done)),
            "images": dg.MetadataValue.int(len(frame)),
            "size": dg.MetadataValue.text(f"{width}x{height}"),
            "max_prompt_chars": dg.MetadataValue.int(int(frame["image_prompt"].str.len().max())),
            "first_image_uri": dg.MetadataValue.path(frame["image_uri"].iloc[0]),
            "preview": dg.MetadataValue.md(
                f"![{first_sid} scene 1](data:image/jpeg;base64,{thumb})\n\n"
                + frame[["story_id", "scene_number", "image_uri"]].head(20).to_markdown(index=False)
            ),
            **provenance_metadata([Provenance.model_validate(p) for p in frame["provenance"]]),
        }
    )


@dg.asset(
    deps=[scene_images, structured_story],
    code_version="storybook-v1",
    **{**IMAGE_COMMON, "pool": None},
)
def storybook(
    context: dg.AssetExecutionContext,
    db: StoryDatabase,
    objects: ObjectStoreResource,
    images: ImageServiceResource,
) -> dg.MaterializeResult:
    """The finished book: an HTML page with the title and every scene's text and picture."""
    ids = story_ids(context)
    engine = db.engine()
    store = objects.store()
    stories = repo.load_stories(engine, ids)
    scenes = repo.load_scenes(engine, ids)
    width, height = images.size()

    async def work(sid: str) -> str:
        rows = scenes[scenes["story_id"] == sid].to_dict("records")
        if sid not in stories or not rows or any(not r["image_uri"] for r in rows):
            raise LookupError(f"story {sid} has no complete scene images yet")
        pages = [
            Page(
                scene_number=r["scene_number"],
                text=r["text"],
                # Books live at books/<id>/<sha>.html, images at images/<id>/<sha>.png.
                image_src=f"../../images/{sid}/{r['image_sha256']}.png",
                alt=r["moment"] or "",
            )
            for r in rows
        ]
        html = render_book(sid, stories[sid], pages, width, height).encode()
        uri = await asyncio.to_thread(store.put, store.key_for("books", sid, html, ".html"), html)
        await asyncio.to_thread(repo.set_book, engine, sid, uri, _by(context))
        return uri

    done = run_per_story(context, ids, work, _failure_recorder(context, db))
    first = next(iter(done.values()))
    return dg.MaterializeResult(
        metadata={
            "stories": dg.MetadataValue.int(len(done)),
            "book_uri": dg.MetadataValue.path(first),
            "books": dg.MetadataValue.json(done),
            "title": dg.MetadataValue.text(stories[next(iter(done))].story_meta.story_title),
        }
    )
