"""The book stage: content safety on every text of the story (the word list, then the
moderation endpoint when configured), then the HTML book in the object store."""

from __future__ import annotations

import asyncio
import time

from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.book import CastPage, Page, cast_title, render_book
from storygen_dagster.domain.checks import story_texts, unsafe_terms
from storygen_dagster.domain.models import Provenance
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.illustrations import unsafe_message
from storygen_dagster.engine.outcomes import Built, StageError, Uri
from storygen_dagster.engine.versions import images_version, story_version
from storygen_dagster.engine.vocabulary import BOOK, IMAGES, SHEET, STRUCTURED
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.picture_reviews import current_verdicts


async def content_safety(run: StoryRun, sid: str, texts: dict[str, str | None]) -> None:
    found = unsafe_terms(texts, list(run.deps.blocklist))
    if run.deps.moderation is not None and run.check_selected(BOOK, "content_safety"):
        found += await run.deps.moderation.flagged(texts)
    run.check(sid, BOOK, "content_safety", found, hold=True)


async def storybook(run: StoryRun, sid: str) -> None:
    story = await run.story(sid)
    rows = await run.scenes(sid)
    if not rows or any(not r["image_uri"] for r in rows):
        raise LookupError(f"story {sid} has no complete scene images yet")
    texts = story_texts(
        story,
        {r["scene_number"]: r["moment"] for r in rows},
        {r["scene_number"]: r["image_prompt"] for r in rows},
    )
    await content_safety(run, sid, texts)
    found = await asyncio.to_thread(current_verdicts, run.engine, sid)
    unsafe = sorted(n for n, review in found.items() if review["safety_failed"])
    if unsafe:  # a picture the safety review failed never reaches a published book
        raise StageError(sid, BOOK, unsafe_message(unsafe), hold=True, held_as="needs_review")
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
    sheet = await run.sheet(sid)
    # The first page: the cast as the character sheet shows them (a story made before sheets
    # existed has none: its book starts with the first scene).
    cast = (
        CastPage(
            cast_title(story.child_profile.name, story.side_character),
            f"../../images/{sid}/{sheet['sha256']}.png",
        )
        if sheet
        else None
    )
    language = run.deps.printing.language
    fingerprint = fp.storybook(
        story,
        [(r["scene_number"], r["text"], r["image_sha256"]) for r in rows],
        sheet["sha256"] if sheet else None,
        language,
    )
    if await run.skip_current(sid, BOOK, fingerprint):
        return
    started = time.perf_counter()
    html = render_book(sid, story, pages, run.width, run.height, cast, language).encode()
    store = run.deps.store
    key = store.key_for("books", sid, html, ".html")
    uri = await asyncio.to_thread(store.put, key, html)
    await asyncio.to_thread(
        repo.set_book, run.engine, sid, uri, run.options.by, input_fingerprint=fingerprint
    )
    prov = Provenance(
        provider="storygen",
        model="book.html.j2",
        prompt_name="storybook",
        prompt_version="v1",
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        input_fingerprint=fingerprint,
    )
    run.built(
        Built(
            story_id=sid,
            asset=BOOK,
            facts={
                "book_uri": Uri(uri),
                "title": story.story_meta.story_title,
                "pages": len(pages),
                "cast_page": cast.title if cast else "",
            },
            provenance=[prov],
            fingerprint=fingerprint,
            # The book's key is its content hash.
            data_version=key.rsplit("/", 1)[1].removesuffix(".html"),
            by=run.options.by,
            inputs={
                IMAGES: images_version(rows),
                STRUCTURED: story_version(story),
                **({SHEET: sheet["sha256"]} if sheet else {}),
            },
        )
    )
