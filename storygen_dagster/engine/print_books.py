"""The print stages: storybook_pdf and storybook_epub, rendered from the stored story and
pictures (no provider call: rendering pays nothing), stored content-addressed beside the HTML
book, and the PDF's print_preflight check."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import TYPE_CHECKING

from storygen_dagster.books.epub import render_epub
from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.assets import EPUB, PDF, PRINT_FILES
from storygen_dagster.domain.models import Provenance, StructuredStory
from storygen_dagster.domain.printing import BookScene, PrintBook, PrintSettings
from storygen_dagster.engine.context import StoryRun
from storygen_dagster.engine.outcomes import Built, Uri
from storygen_dagster.engine.versions import images_version
from storygen_dagster.engine.vocabulary import BOOK, IMAGES
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo

if TYPE_CHECKING:
    from storygen_dagster.books.preflight import Preflight

SUFFIX = {PDF: ".pdf", EPUB: ".epub"}
PREFLIGHT = "print_preflight"


def _render(asset: str, book: PrintBook, settings: PrintSettings) -> bytes:
    if asset != PDF:
        return render_epub(book, settings)
    # fpdf2 and fontTools (and pypdf below) are imported on a story's first print file, in a
    # worker thread: at the top of this module they cost a CLI run ~0.3 s of CPU before its
    # first provider call.
    from storygen_dagster.books.pdf import render_pdf

    return render_pdf(book, settings)


def _preflight(pdf: bytes, settings: PrintSettings, scene_numbers: list[int]) -> Preflight:
    from storygen_dagster.books.preflight import preflight

    return preflight(pdf, settings, scene_numbers)


def file_fingerprint(asset: str, story: StructuredStory, rows, settings: PrintSettings) -> str:
    pages = [(int(r["scene_number"]), r["text"], r["moment"], r["image_sha256"]) for r in rows]
    return fp.print_file(asset, story, pages, settings)


async def _story_facts(run: StoryRun, sid: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for column in ("status", "book_uri", "created_at"):
        found = await asyncio.to_thread(reads.load_story_field, run.engine, [sid], column)
        out[column] = found.get(sid)
    return out


async def print_file(run: StoryRun, sid: str, asset: str) -> None:
    """Render and store one of the story's print files (PDF or EPUB)."""
    story = await run.story(sid)
    rows = await run.scenes(sid)
    if not rows or any(not r["image_uri"] for r in rows):
        raise LookupError(f"story {sid} has no complete scene images yet")
    facts = await _story_facts(run, sid)
    if facts["status"] in ("held", "needs_review"):
        why = "content_safety" if facts["status"] == "held" else "the picture review"
        raise LookupError(f"story {sid} is held by {why}: no {asset} is made")
    if not facts["book_uri"]:
        raise LookupError(f"story {sid} has no storybook yet: materialize storybook first")
    settings = run.deps.printing
    fingerprint = file_fingerprint(asset, story, rows, settings)
    if await run.skip_current(sid, asset, fingerprint):
        return
    store = run.deps.store
    pngs = await asyncio.gather(*(asyncio.to_thread(store.get, r["image_uri"]) for r in rows))
    book = PrintBook(
        story_id=sid,
        title=story.story_meta.story_title,
        child_name=story.child_profile.name,
        age=story.child_profile.age,
        value_to_teach=story.story_meta.value_to_teach,
        created_at=facts["created_at"],  # type: ignore[arg-type]
        scenes=[
            BookScene(int(r["scene_number"]), r["text"], r["moment"] or "", png)
            for r, png in zip(rows, pngs, strict=True)
        ],
    )
    async with run.renders.slot():
        started = time.perf_counter()
        data = await asyncio.to_thread(_render, asset, book, settings)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
    key = await asyncio.to_thread(store.key_for, "books", sid, data, SUFFIX[asset])
    uri = await asyncio.to_thread(store.put, key, data)
    await asyncio.to_thread(
        repo.set_print_file,
        run.engine,
        sid,
        asset,
        uri,
        run.options.by,
        input_fingerprint=fingerprint,
    )
    renderer = f"fpdf2 {version('fpdf2')}" if asset == PDF else "storygen epub3"
    prov = Provenance(
        provider="storygen",
        model=renderer,
        prompt_name=asset,
        prompt_version="v1",
        latency_ms=latency_ms,
        input_fingerprint=fingerprint,
    )
    book_sha = str(facts["book_uri"]).rsplit("/", 1)[1].removesuffix(".html")
    run.built(
        Built(
            story_id=sid,
            asset=asset,
            facts={
                PRINT_FILES[asset]: Uri(uri),
                "bytes": len(data),
                "render_ms": latency_ms,
                **(
                    {"trim_in": settings.trim_in, "bleed_in": settings.bleed_in}
                    if asset == PDF
                    else {}
                ),
                "language": settings.language,
            },
            provenance=[prov],
            fingerprint=fingerprint,
            data_version=key.rsplit("/", 1)[1].removesuffix(SUFFIX[asset]),
            by=run.options.by,
            inputs={BOOK: book_sha, IMAGES: images_version(rows)},
        )
    )
    if asset == PDF:
        await check_preflight(run, sid, data, [int(r["scene_number"]) for r in rows])


async def check_preflight(run: StoryRun, sid: str, pdf: bytes, scene_numbers: list[int]) -> None:
    """print_preflight: WARN for what a printer would flag, ERROR for an unprintable file."""
    if not run.check_selected(PDF, PREFLIGHT):
        return
    report = await asyncio.to_thread(_preflight, pdf, run.deps.printing, scene_numbers)
    run.check(
        sid,
        PDF,
        PREFLIGHT,
        report.problems,
        blocking=False,
        severity="error" if report.errors else None,
        facts=report.facts,
    )


async def check_stored_preflight(run: StoryRun, sid: str) -> None:
    """print_preflight on the stored PDF (the UI's "Execute checks")."""
    if not run.check_selected(PDF, PREFLIGHT):
        return
    found = await asyncio.to_thread(reads.load_story_field, run.engine, [sid], "pdf_uri")
    if not found.get(sid):
        return
    pdf = await asyncio.to_thread(run.deps.store.get, str(found[sid]))
    rows = await run.scenes(sid)
    await check_preflight(run, sid, pdf, [int(r["scene_number"]) for r in rows])
