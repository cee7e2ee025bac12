"""The process's font cache (books/font_cache.py) changes no byte of a book: renders with it
equal renders without it, for books in different scripts one after another (each embeds the
glyphs it uses, no more), in threads at once, after an evicted face, and after the font file
changed; the parsed fonts are left as they were parsed; every slot of fpdf2's font is either
shared or per document."""

import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import TTFFont
from pypdf import PdfReader

from storygen_dagster.books import font_cache
from storygen_dagster.books.fonts import _kurinto
from storygen_dagster.books.pdf import render_pdf
from storygen_dagster.books.preflight import preflight
from storygen_dagster.domain.printing import BookScene, PrintBook, PrintSettings
from storygen_dagster.providers.offline_painter import paint_scene

_PNG = paint_scene("a fox", 320, 240, 1)
BOOKS = {
    "latin": ("Maya and the Fox", ["Maya walked into the forest.", "The fox said hello."]),
    "mixed": ("Zoë", ["Nguyễn: عمر قال شكرا 美咲", "Łucja found a scarf."]),
    "korean": ("지우와 여우", ["지우 watched the stars."]),
    "greek": ("Ωmega", ["Ζωή και η αλεπού."]),
}


def _book(key: str) -> PrintBook:
    title, texts = BOOKS[key]
    scenes = [BookScene(n, t, f"moment {n}", _PNG) for n, t in enumerate(texts, start=1)]
    created = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    return PrintBook(key, title, title.split()[0], 5, "sharing", created, scenes)


def _uncached(keys, settings=PrintSettings()) -> dict[str, bytes]:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(font_cache, "MAX_ENTRIES", 0)
        return {k: render_pdf(_book(k), settings) for k in keys}


@pytest.fixture(scope="module")
def uncached() -> dict[str, bytes]:
    return _uncached(BOOKS)


def _embedded_text(pdf: bytes) -> set[str]:
    """The characters the embedded fonts map (every font's ToUnicode CMap)."""
    chars: set[str] = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            cmap = ref.get_object()["/ToUnicode"].get_object().get_data().decode()
            for line in cmap.splitlines():
                if line.startswith("<") and "> <" in line:
                    hex_text = line.split("> <")[1].rstrip(">")
                    chars |= set(bytes.fromhex(hex_text).decode("utf-16-be"))
    return chars


def test_books_in_different_scripts_one_after_another_equal_uncached_renders(uncached):
    font_cache.clear()
    order = ["latin", "mixed", "korean", "latin", "greek"]
    cached = [(k, render_pdf(_book(k), PrintSettings())) for k in order]
    for key, pdf in cached:
        assert pdf == uncached[key], key
        report = preflight(
            pdf, PrintSettings(min_dpi=1), [s.scene_number for s in _book(key).scenes]
        )
        assert report.errors == [], (key, report.errors)
    latin = _embedded_text(cached[3][1])  # after the mixed and Korean books
    assert "M" in latin and not latin & set("ễعقش美咲지우Ω"), latin
    assert {"지", "우"} <= _embedded_text(cached[2][1])


def test_books_rendered_in_threads_at_once_equal_uncached_renders(monkeypatch, uncached):
    # Then with room for one face: the faces a book uses are evicted while it renders.
    for max_entries, keys in (
        (font_cache.MAX_ENTRIES, ["latin", "mixed", "greek", "latin", "mixed", "greek"]),
        (1, ["latin", "greek", "latin"]),
    ):
        font_cache.clear()
        monkeypatch.setattr(font_cache, "MAX_ENTRIES", max_entries)
        with ThreadPoolExecutor(max_workers=3) as pool:
            pdfs = list(pool.map(lambda k: render_pdf(_book(k), PrintSettings()), keys))
        assert [k for k, pdf in zip(keys, pdfs, strict=True) if pdf != uncached[k]] == []
        assert font_cache.size() <= max_entries


def _parsed(family: str = "KurintoSans", style: str = "") -> TTFont:
    face = _kurinto(family)
    fonts = font_cache.DocumentFonts(FPDF())
    fonts.add(face.family, style, face.regular if style == "" else face.bold)
    return fonts.pdf.fonts[f"{family.lower()}{style}"].ttfont


def test_the_parsed_fonts_are_left_as_they_were_parsed():
    for key in ("latin", "mixed"):
        render_pdf(_book(key), PrintSettings())
    parsed = _parsed()
    fresh = TTFont(_kurinto("KurintoSans").regular)
    assert parsed is _parsed()  # the cached parse
    assert parsed.getGlyphOrder() == fresh.getGlyphOrder()
    assert parsed["hmtx"].metrics == fresh["hmtx"].metrics
    assert [t.cmap for t in parsed["cmap"].tables] == [t.cmap for t in fresh["cmap"].tables]
    assert parsed["post"].formatType == fresh["post"].formatType == 2.0
    assert parsed["post"].extraNames == fresh["post"].extraNames
    assert len(parsed["glyf"].glyphs) == len(fresh["glyf"].glyphs)


def test_a_changed_font_file_is_parsed_again(tmp_path):
    font = tmp_path / "book.ttf"
    shutil.copy(_kurinto("KurintoSans").regular, font)
    settings = PrintSettings(font=str(font))
    first = render_pdf(_book("latin"), settings)
    shutil.copy(_kurinto("KurintoSans").bold, font)  # another size: another key
    second = render_pdf(_book("latin"), settings)
    assert second != first
    assert second == _uncached(["latin"], settings)["latin"]


def test_every_slot_of_fpdf2s_font_is_shared_or_per_document():
    """A new fpdf2 that adds state to TTFFont fails here: say whether a copy may share it."""
    slots = set(TTFFont.__slots__)
    assert not font_cache.SHARED_SLOTS & font_cache.DOCUMENT_SLOTS
    assert slots == font_cache.SHARED_SLOTS | font_cache.DOCUMENT_SLOTS


@pytest.fixture(autouse=True, scope="module")
def _fresh_cache():
    font_cache.clear()
    yield
    font_cache.clear()
