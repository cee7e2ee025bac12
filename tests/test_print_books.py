"""The print PDF, the EPUB and the print preflight: pages and page boxes read back with pypdf
(at the default and at a configured trim and bleed, pictures to the bleed), pictures embedded,
text in any script extractable, a child's name in Latin, Vietnamese, CJK or Arabic script in
the PDF, the EPUB and the HTML book, the back cover's lines clear of each other, the EPUB
through epubcheck, and the preflight's warning and failures (picture, box, font)."""

import io
import itertools
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime

import pytest
from fpdf import FPDF
from markupsafe import escape
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ContentStream, DictionaryObject, NameObject

from storygen_dagster.books.epub import book_identifier, render_epub
from storygen_dagster.books.fonts import FontError, fonts_for
from storygen_dagster.books.pdf import render_pdf
from storygen_dagster.books.preflight import matrix_product, preflight
from storygen_dagster.domain.book import Page, render_book
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.domain.printing import BookScene, PrintBook, PrintSettings, page_plan
from storygen_dagster.providers.offline import story_for
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


def _visible_pictures(page) -> list[tuple[float, float, float, float]]:
    """The part of each image the page shows, (x0, y0, x1, y1) in points: the image's box
    (from the current matrix) cut by the clip rectangle it is drawn in."""

    def cut(a, b):
        return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))

    ctm, clip, rect = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0), None, None
    stack, shown = [], []
    for operands, operator in ContentStream(page.get_contents(), page.pdf).operations:
        if operator == b"q":
            stack.append((ctm, clip))
        elif operator == b"Q":
            ctm, clip = stack.pop()
        elif operator == b"cm":
            ctm = matrix_product(tuple(float(v) for v in operands), ctm)  # type: ignore[arg-type]
        elif operator == b"re":  # fpdf2 draws at the identity matrix: user space is the page
            x, y, w, h = (float(v) for v in operands)
            rect = (min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h))
        elif operator == b"W" and rect is not None:
            clip = rect if clip is None else cut(clip, rect)
        elif operator == b"Do":
            a, _, _, d, e, f = ctm
            box = (e, f, e + a, f + d)
            shown.append(box if clip is None else cut(box, clip))
    return [tuple(round(v, 2) for v in box) for box in shown]


def _text_runs(page) -> list[tuple[float, float, float, str]]:
    """(baseline y, x, font size, text) of every text run drawn on the page."""
    runs = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            runs.append((tm[5] * cm[3] + cm[5], tm[4] * cm[0] + cm[4], size, text.strip()))

    page.extract_text(visitor_text=visit)
    return runs


def test_a_configured_trim_and_bleed_set_the_boxes_and_pictures_reach_the_bleed(monkeypatch):
    """STORYGEN_PRINT_TRIM_IN=8 / _BLEED_IN=0.25 (trims are square: one setting for both
    sides). The page is 8.5 in = 612 pt, the trim 18 pt in from every edge; the cover's
    picture covers the whole page and each scene's runs to the left, right and top edges (the
    bleed); text stays inside the trim."""
    monkeypatch.setenv("STORYGEN_PRINT_TRIM_IN", "8")
    monkeypatch.setenv("STORYGEN_PRINT_BLEED_IN", "0.25")
    settings = PrintSettings.from_settings(Settings())
    assert (settings.trim_in, settings.bleed_in, settings.page_pt) == (8, 0.25, 612)
    pdf = render_pdf(_book(texts=TEXTS[:2]), settings)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 8
    for page in reader.pages:
        assert [float(v) for v in page.mediabox] == [0, 0, 612, 612]
        assert [float(v) for v in page.trimbox] == [18, 18, 594, 594]
        assert [float(v) for v in page["/BleedBox"]] == [0, 0, 612, 612]
        for y, x, _, text in _text_runs(page):
            assert 18 < x < 594 and 18 < y < 594, (text, x, y)
    plan = page_plan([1, 2])
    assert _visible_pictures(reader.pages[plan.index("cover")]) == [(0, 0, 612, 612)]
    for scene in ("scene:1", "scene:2"):
        [(x0, y0, x1, y1)] = _visible_pictures(reader.pages[plan.index(scene)])
        assert (x0, x1, y1) == (0, 612, 612) and y0 > 18, scene  # the text below, in the trim
    [back] = _visible_pictures(reader.pages[plan.index("back")])
    assert 18 < back[0] < back[2] < 594  # the back cover's picture is framed, in the trim
    assert (
        preflight(pdf, PrintSettings(trim_in=8, bleed_in=0.25, min_dpi=20), [1, 2]).problems == []
    )
    assert (
        preflight(pdf, PrintSettings(min_dpi=20), [1, 2])
        .errors[0]
        .startswith("page 1: MediaBox [0.0, 0.0, 612.0, 612.0] is not 630.0 pt square")
    )


def test_a_long_title_on_the_back_cover_stays_clear_of_the_credit():
    """At a small trim a long title used to run into "Made with storygen" and push the blurb
    under it, past the safe area: now the title and blurb are set smaller, then the picture
    shrinks, and every line sits above the one below it."""
    title = (
        "Maya and the Very Curious Little Fox Who Lived Under the Old Oak Tree by the River: "
        "A Story of Sharing and Kindness"
    )
    settings = PrintSettings(trim_in=6)
    reader = PdfReader(io.BytesIO(render_pdf(_book(texts=TEXTS[:1], title=title), settings)))
    back = reader.pages[-1]
    runs = _text_runs(back)
    assert runs[-1][3] == "Made with storygen" and "Kindness" in " ".join(r[3] for r in runs)
    for (y, _, _, upper), (below, _, size, lower) in itertools.pairwise(runs):
        assert y - below >= size, f"{upper!r} overlaps {lower!r}"
    safe = settings.bleed_pt + 0.375 * 72
    assert runs[-1][0] >= safe - 3  # the credit's baseline at the safe area (descenders aside)
    [(_, picture_bottom, _, _)] = _visible_pictures(back)
    assert picture_bottom > runs[0][0] + runs[0][2]  # the title starts under the picture


def _font_file_removed(pdf: bytes) -> tuple[bytes, str]:
    """The PDF with the first page's first font left unembedded (its FontFile2 removed, the
    glyph metrics kept): what a printer's tools flag. Also the font's name."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    fonts = writer.pages[0]["/Resources"].get_object()["/Font"].get_object()
    font = next(iter(fonts.values())).get_object()
    assert font["/Subtype"] == "/Type0"  # fpdf2 embeds TrueType fonts as Type0 + CIDFontType2
    descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
    del descriptor[NameObject("/FontFile2")]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), str(font["/BaseFont"]).lstrip("/")


def test_preflight_fails_on_a_font_that_is_not_embedded(unicode_pdf):
    settings = PrintSettings(min_dpi=20)
    damaged, name = _font_file_removed(unicode_pdf)
    assert "KurintoSans" in name  # e.g. "ABCDEF+KurintoSans-Bd", the subset fpdf2 wrote
    report = preflight(damaged, settings, [1, 2, 3])
    assert report.errors == [f"font {name} is not embedded"]
    assert name in report.facts["fonts"]
    # A core font (fpdf2's Helvetica: a name, no font file at all) is never embedded either.
    core = FPDF(unit="pt", format=(settings.page_pt, settings.page_pt))
    core.add_page()
    core.set_font("Helvetica", size=12)
    core.cell(text="Hello")
    report = preflight(bytes(core.output()), settings, [1])
    assert "font Helvetica is not embedded" in report.errors


NAMES = ["Zoë", "Łucja", "Nguyễn", "美咲", "عمر"]
_PNG = paint_scene("a fox in a forest", 320, 240, 1)


@pytest.mark.parametrize("name", NAMES)
def test_a_name_in_any_script_renders_in_the_pdf_epub_and_html(name):
    """The child's name through all three books, with an emoji in the title: the PDF's text
    (extracted back with pypdf), the EPUB's XHTML and the HTML book keep the name; the emoji
    may be drawn or dropped, the rest of the title stays."""
    story = story_for(StoryRequest(child_name=name, scene_count=3))
    title = f"{name} and the Fox 🦊"
    story = story.model_copy(
        update={"story_meta": story.story_meta.model_copy(update={"story_title": title})}
    )
    assert name in story.scenes[0].text  # the offline story says the name
    scenes = [
        BookScene(s.scene_number, s.text, f"{name} in scene {s.scene_number}", _PNG)
        for s in story.scenes
    ]
    created = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    book = PrintBook("names-1", title, name, 5, "sharing", created, scenes)

    reader = PdfReader(io.BytesIO(render_pdf(book, PrintSettings())))
    pages = [page.extract_text() for page in reader.pages]
    plan = page_plan([1, 2, 3])
    for role in ("cover", "title", "back"):
        assert name in pages[plan.index(role)], (role, pages[plan.index(role)])
        assert "and the Fox" in pages[plan.index(role)]
    assert name in pages[plan.index("scene:1")]

    epub = zipfile.ZipFile(io.BytesIO(render_epub(book, PrintSettings())))
    assert f"a story for {name}, age 5" in epub.read("OEBPS/title.xhtml").decode()
    assert name in epub.read("OEBPS/scene-1.xhtml").decode()
    assert f"<dc:title>{title}</dc:title>" in epub.read("OEBPS/content.opf").decode()

    html = render_book(
        "names-1",
        story,
        [Page(s.scene_number, s.text, f"{s.scene_number}.png", name) for s in story.scenes],
        320,
        240,
    )
    assert f"<title>{title}</title>" in html and f"A story for {name}, age" in html
    assert f"<p>{escape(story.scenes[0].text)}</p>" in html
