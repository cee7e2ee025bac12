"""The print PDF, the EPUB and the print preflight: pages and page boxes read back with pypdf,
pictures embedded, text in any script extractable, the EPUB through epubcheck, the preflight's
warning and failure, and a text edit re-rendering both files without a provider call."""

import io
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject, NameObject

from storygen_dagster.books.epub import book_identifier, render_epub
from storygen_dagster.books.fonts import FontError, fonts_for
from storygen_dagster.books.pdf import render_pdf
from storygen_dagster.books.preflight import preflight
from storygen_dagster.domain.printing import BookScene, PrintBook, PrintSettings, page_plan
from storygen_dagster.providers.offline_painter import paint_scene
from storygen_dagster.settings import Settings

TEXTS = [
    "Zoë and Łucja walked into the pine forest as the sun went down.",
    "Nguyễn found a little fox under an old oak and shared his warm red scarf.",
    "美咲 laughed when the fox licked her nose. عمر قال: شكرا يا صديقي الثعلب. Then they "
    "watched the stars come out one by one.",
]


def _book(size=(320, 240), texts=TEXTS, title="Zoë and the Fox 🦊") -> PrintBook:
    scenes = [
        BookScene(n, text, f"the fox and the child, scene {n}", paint_scene(text, *size, n))
        for n, text in enumerate(texts, start=1)
    ]
    created = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    return PrintBook("uni-1", title, "Zoë", 5, "sharing", created, scenes)


@pytest.fixture(scope="module")
def unicode_pdf() -> bytes:
    return render_pdf(_book(), PrintSettings())


def test_pdf_pages_boxes_pictures_and_unicode_text(unicode_pdf):
    reader = PdfReader(io.BytesIO(unicode_pdf))
    plan = page_plan([1, 2, 3])
    assert plan == ["cover", "bookplate", "title", "scene:1", "scene:2", "scene:3", "end", "back"]
    assert len(reader.pages) == 8
    for page in reader.pages:
        # 8.5 in trim + 0.125 in bleed on each side = 8.75 in = 630 pt.
        assert [float(v) for v in page.mediabox] == [0, 0, 630, 630]
        assert [float(v) for v in page.trimbox] == [9, 9, 621, 621]
        assert [float(v) for v in page["/BleedBox"]] == [0, 0, 630, 630]
    for number in (0, 3, 4, 5, 7):  # cover, the scenes, back cover
        assert list(reader.pages[number].images), f"page {number + 1} has no picture"
    text = "\n".join(p.extract_text() for p in reader.pages)
    for name in ("Zoë", "Łucja", "Nguyễn", "美咲", "عمر قال", "شكرا يا صديقي"):
        assert name in text, name
    assert "Zoë and the Fox" in text and "watched the stars" in text
    fonts = preflight(unicode_pdf, PrintSettings(), [1, 2, 3]).facts["fonts"]
    assert any("KurintoSansSC" in f for f in fonts)  # the CJK face, only because of 美咲


def test_an_unchanged_book_renders_to_identical_bytes(unicode_pdf):
    assert render_pdf(_book(), PrintSettings()) == unicode_pdf
    assert render_epub(_book(), PrintSettings()) == render_epub(_book(), PrintSettings())


def test_dropping_the_layout_tables_before_output_changes_no_byte(monkeypatch):
    """render_pdf drops GSUB/GPOS/GDEF from fontTools' copies of the fonts before fpdf2
    subsets them (fpdf2 drops them from the embedded subset anyway; fontTools would first
    decompile them whole). Rendered the slow way, the book is the same bytes."""
    import storygen_dagster.books.pdf as pdf_module

    # One scene in Latin, Vietnamese and Arabic (shaped) and Chinese (the fallback face).
    book = _book(texts=["Nguyễn: عمر قال شكرا 美咲"], title="Zoë")
    fast = render_pdf(book, PrintSettings())
    monkeypatch.setattr(pdf_module, "_drop_layout_tables", lambda pdf: None)
    assert render_pdf(book, PrintSettings()) == fast


def test_fonts_add_a_cjk_face_only_when_the_text_needs_one():
    assert fonts_for("Maya, Zoë, Nguyễn, عمر").fallbacks == ()
    assert fonts_for("美咲").fallbacks[0].family == "KurintoSansSC"
    assert fonts_for("美咲", language="ja").fallbacks[0].family == "KurintoSansJP"
    assert fonts_for("みさき").fallbacks == ()  # Kurinto Sans has the kana itself
    assert fonts_for("美咲 みさき").fallbacks[0].family == "KurintoSansJP"
    assert fonts_for("지우").fallbacks[0].family == "KurintoSansKR"


def test_bad_print_settings_name_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYGEN_PRINT_TRIM_IN", "30")
    with pytest.raises(ValueError, match="print_trim_in"):
        Settings()
    with pytest.raises(FontError, match="STORYGEN_PRINT_FONT"):
        fonts_for("Maya", font=str(tmp_path / "missing.ttf"))
    with pytest.raises(ValueError, match="language"):
        PrintSettings(language="english please")


def test_preflight_warns_and_says_what_size_would_pass():
    pdf = render_pdf(_book(size=(1024, 768), texts=TEXTS[:2]), PrintSettings())
    report = preflight(pdf, PrintSettings(min_dpi=300), [1, 2])
    assert report.errors == []
    assert report.facts["pages"] == 8 and report.facts["pictures"] == 4
    # Full bleed, 8.75 in: 1024 px across is 117 dpi, the cover's 768 px high 88 dpi.
    assert report.facts["min_dpi"] == pytest.approx(87.8, abs=0.1)
    [warning] = report.warnings
    assert "under 300 dpi" in warning and "1024x768 px at 117 dpi" in warning
    assert "at least 3504x2632 px would pass" in warning
    assert preflight(pdf, PrintSettings(min_dpi=80), [1, 2]).problems == []


def _damaged(pdf: bytes, page_number: int, *, drop: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    page = writer.pages[page_number - 1]
    if drop == "picture":
        resources = page["/Resources"].get_object()
        resources[NameObject("/XObject")] = DictionaryObject()
    else:
        del page[NameObject(f"/{drop}")]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_preflight_fails_on_a_missing_picture_or_box(unicode_pdf):
    settings = PrintSettings(min_dpi=20)
    assert preflight(unicode_pdf, settings, [1, 2, 3]).problems == []
    report = preflight(_damaged(unicode_pdf, 5, drop="picture"), settings, [1, 2, 3])
    assert report.errors == ["page 5 (scene:2) has no picture"]
    report = preflight(_damaged(unicode_pdf, 2, drop="TrimBox"), settings, [1, 2, 3])
    assert report.errors == ["page 2 has no TrimBox"]
    assert preflight(b"not a pdf", settings, [1]).errors[0].startswith("the PDF does not open")


def test_epub_reading_order_alt_text_language_and_cover():
    book = _book()
    epub = zipfile.ZipFile(io.BytesIO(render_epub(book, PrintSettings(language="en"))))
    names = epub.namelist()
    assert names[0] == "mimetype" and epub.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
    opf = epub.read("OEBPS/content.opf").decode()
    assert book_identifier("uni-1") in opf and "<dc:language>en</dc:language>" in opf
    assert "<dc:title>Zoë and the Fox 🦊</dc:title>" in opf and 'properties="cover-image"' in opf
    spine = [line for line in opf.splitlines() if "<itemref" in line]
    assert len(spine) == 5  # cover, title page, 3 scenes
    scene = epub.read("OEBPS/scene-3.xhtml").decode()
    assert 'alt="the fox and the child, scene 3"' in scene and "美咲" in scene and "عمر" in scene


@pytest.mark.skipif(shutil.which("java") is None, reason="epubcheck needs java (.ci/run installs)")
def test_epub_passes_epubcheck(tmp_path):
    jar = shutil.which("epubcheck")
    assert jar, "epubcheck is not installed: apt-get install epubcheck (.ci/run does)"
    path = tmp_path / "book.epub"
    path.write_bytes(render_epub(_book(), PrintSettings()))
    # Debian's /usr/bin/epubcheck is the jar itself.
    done = subprocess.run(
        ["java", "-jar", jar, str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 fatals / 0 errors / 0 warnings" in done.stdout
