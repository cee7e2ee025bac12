"""The print assets in the story step, on real providers aimed at the loopback fake: every story
gets a PDF and an EPUB, an unchanged re-run stores the same bytes and calls nobody, a text edit
makes both stale and re-rendering them calls nobody, and print_preflight reports per story."""

import io

import dagster as dg
from pypdf import PdfReader

from storygen_dagster.definitions import build_definitions
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.edits import edit_story
from storygen_dagster.storage.objects import ObjectStore
from storygen_dagster.storage.staleness import stale_items

pytest_plugins = ["tests.fakes.fixtures"]
PRINT = ["storybook", "storybook_pdf", "storybook_epub"]


def _files(engine, sid: str) -> tuple[str, str]:
    row = reads.story_overview(engine, sid).iloc[0]
    return row["pdf"], row["epub"]


def _preflight(instance, sid: str):
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("storybook_pdf"), "print_preflight"), limit=10
    )
    return next(r for r in records if r.partition == sid).event.asset_check_evaluation


def test_text_edit_rerenders_pdf_and_epub_without_a_provider_call(
    fake, real_resources, instance, engine, object_root, monkeypatch
):
    sid = "print-1"
    request = StoryRequest(story_id=sid, child_name="Łucja", scene_count=3)
    repo.register_request(engine, sid, request, by="test")
    defs = build_definitions(real_resources)
    assert all(o.success for o in materialize_stories(defs, instance, [sid]))
    pdf_uri, epub_uri = _files(engine, sid)
    store = ObjectStore(str(object_root))
    assert pdf_uri.endswith(".pdf") and epub_uri.endswith(".epub")
    assert store.get(pdf_uri).startswith(b"%PDF") and store.get(epub_uri)[:2] == b"PK"
    assert not [i for i in stale_items(engine, sid) if i["asset"] in PRINT]
    evaluation = _preflight(instance, sid)
    assert evaluation.passed and evaluation.metadata["pages"].value == 8

    # Unchanged inputs: the same bytes again (same content-addressed objects), no new request.
    seen = fake.count()
    assert all(o.success for o in materialize_stories(defs, instance, [sid], assets=PRINT))
    assert _files(engine, sid) == (pdf_uri, epub_uri) and fake.count() == seen

    edit_story(engine, sid, by="editor", scene_number=2, text="Łucja shared her lantern.")
    stale = {i["asset"] for i in stale_items(engine, sid)}
    assert {"storybook_pdf", "storybook_epub"} <= stale
    # At print resolution the 320x240 test pictures warn (the check, not the run, says so).
    monkeypatch.setenv("STORYGEN_PRINT_MIN_DPI", "300")
    assert all(o.success for o in materialize_stories(defs, instance, [sid], assets=PRINT))
    assert fake.count() == seen  # rendering pays nothing
    new_pdf, new_epub = _files(engine, sid)
    assert new_pdf != pdf_uri and new_epub != epub_uri
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(store.get(new_pdf))).pages)
    assert "Łucja shared her lantern." in text
    # Built from the edited text; stale now only because the scene's moment and picture are.
    reasons = {i["asset"]: i["reason"] for i in stale_items(engine, sid)}
    assert reasons["storybook_pdf"] == reasons["storybook_epub"] == "upstream stale"
    evaluation = _preflight(instance, sid)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "pictures of at least" in evaluation.description
    mat = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("storybook_pdf"), asset_partitions=[sid]),
        limit=1,
    ).records[0]
    tags = mat.event_log_entry.dagster_event.step_materialization_data.materialization.tags
    assert tags["dagster/code_version"] == "storybook_pdf-v1"
    assert new_pdf.endswith(tags["dagster/data_version"] + ".pdf")


def test_a_held_story_gets_no_print_files(instance, engine, test_defs, monkeypatch):
    monkeypatch.setenv("STORYGEN_CONTENT_BLOCKLIST", '["fox"]')
    sid = "held-print"
    request = StoryRequest(story_id=sid, scene_count=3, favorites={"animal": "fox"})
    repo.register_request(engine, sid, request, by="test")
    outcomes = materialize_stories(test_defs, instance, [sid])
    assert not all(o.success for o in outcomes)
    row = reads.story_overview(engine, sid).iloc[0]
    assert row["status"] == "held" and row["pdf"] is None and row["epub"] is None


def test_book_language_moves_every_book_and_is_declared(
    instance, engine, test_defs, object_root, monkeypatch
):
    """STORYGEN_BOOK_LANGUAGE is declared by the HTML book as by the PDF and EPUB: changing it
    makes the book stale (and the print files after it), and re-rendering them is current."""
    sid = "lang-1"
    repo.register_request(engine, sid, StoryRequest(story_id=sid, scene_count=3), by="test")
    assert all(o.success for o in materialize_stories(test_defs, instance, [sid]))
    store = ObjectStore(str(object_root))
    book = reads.story_overview(engine, sid).iloc[0]["book"]
    assert '<html lang="en">' in store.get(book).decode()
    assert not stale_items(engine, sid)

    monkeypatch.setenv("STORYGEN_BOOK_LANGUAGE", "pl")
    reasons = {i["asset"]: i["reason"] for i in stale_items(engine, sid)}
    assert reasons == {
        "storybook": "inputs changed",
        "storybook_pdf": "upstream stale",
        "storybook_epub": "upstream stale",
    }, reasons
    assert all(o.success for o in materialize_stories(test_defs, instance, [sid], assets=PRINT))
    new_book = reads.story_overview(engine, sid).iloc[0]["book"]
    assert new_book != book and '<html lang="pl">' in store.get(new_book).decode()
    assert not stale_items(engine, sid)
