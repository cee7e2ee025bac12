"""The print PDF: a square picture book with the pictures to the bleed, set in embedded fonts
with HarfBuzz shaping (Arabic joins, Vietnamese stacks, CJK through a fallback face).

fpdf2 is pure Python (WeasyPrint would need the system's Pango). It writes no TrimBox or
BleedBox of its own: every page gets both from `_BoxedPage`, a subclass whose extra class
attributes fpdf2 serializes like its own page keys (fpdf2 2.8 builds a page's dictionary from
`dir(page)`; tests/test_print_books.py reads the boxes back, so a change there fails a test)."""

from __future__ import annotations

import io
import logging
from datetime import UTC

from fpdf import FPDF
from fpdf.output import PDFPage

from storygen_dagster.books import font_cache, layout
from storygen_dagster.books.fonts import FontSet, dropped_characters, fonts_for
from storygen_dagster.domain.printing import PrintBook, PrintSettings, page_plan

log = logging.getLogger("storygen.books")
INK = (46, 42, 60)
PAPER = (253, 248, 236)
ACCENT = (214, 96, 72)


def render_pdf(book: PrintBook, settings: PrintSettings) -> bytes:
    """The book as PDF bytes; the same book and settings give the same bytes."""
    if not book.scenes:
        raise ValueError(f"story {book.story_id}: a book needs at least one scene")
    fonts = fonts_for(book.texts(), settings.font, settings.language)
    dropped = dropped_characters(book.texts(), fonts)
    if dropped:
        log.warning(
            "characters no book font has are left out",
            extra={"story_id": book.story_id, "characters": "".join(dropped)},
        )
    pdf, document_fonts = _new_document(book, settings, fonts)
    pages = layout.Pages(pdf, settings, fonts.body.family, INK, PAPER, ACCENT)
    scenes = {s.scene_number: s for s in book.scenes}
    for page in page_plan(list(scenes)):
        pdf.add_page()
        if page == "cover":
            pages.cover(book.title, book.child_name, io.BytesIO(book.scenes[0].png))
        elif page == "bookplate":
            pages.centered_text([("This book belongs to", 18, ""), (book.child_name, 30, "B")])
        elif page == "title":
            pages.title_page(book)
        elif page.startswith("scene:"):
            scene = scenes[int(page.split(":", 1)[1])]
            pages.scene(scene.text, io.BytesIO(scene.png), pdf.page)
        elif page == "draw":
            pages.drawing_page(book.child_name)
        elif page == "end":
            pages.centered_text([("The End", 40, "B")])
        elif page == "back":
            pages.back_cover(book, io.BytesIO(book.scenes[-1].png))
    _add_page_boxes(pdf, settings)
    document_fonts.for_output()
    _drop_layout_tables(pdf)
    return bytes(pdf.output())


def _new_document(
    book: PrintBook, settings: PrintSettings, fonts: FontSet
) -> tuple[FPDF, font_cache.DocumentFonts]:
    size = settings.page_pt
    pdf = FPDF(unit="pt", format=(size, size))
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    # Parsed once per process (books/font_cache.py).
    document_fonts = font_cache.DocumentFonts(pdf)
    for face in (fonts.body, *fonts.fallbacks):
        document_fonts.add(face.family, "", face.regular)
        document_fonts.add(face.family, "B", face.bold)
    pdf.set_font(fonts.body.family, "", 16)
    if fonts.fallbacks:
        pdf.set_fallback_fonts([f.family for f in fonts.fallbacks], exact_match=False)
    pdf.set_text_shaping(True)
    pdf.set_title(book.title)
    pdf.set_subject(f"a story for {book.child_name}")
    pdf.set_author("storygen")
    pdf.set_creator("storygen")
    pdf.set_lang(settings.language)
    created = book.created_at
    pdf.set_creation_date(created if created.tzinfo else created.replace(tzinfo=UTC))
    return pdf, document_fonts


# The OpenType layout tables fpdf2 drops from every embedded subset (fpdf/output.py,
# `_add_fonts`: GSUB, GPOS and GDEF are in its subsetter's drop_tables). Shaping reads them
# from the font file through HarfBuzz, not from fontTools' copy; but fontTools' subsetter
# (4.68) decompiles all of GSUB and GPOS before dropping them, to look for "beyond 64k" lookup
# formats: ~70% of a book's render time with Kurinto. Dropping them first embeds the same bytes.
# Called on the fonts output() subsets (the cache's parse never loads them either).
def _drop_layout_tables(pdf: FPDF) -> None:
    for font in pdf.fonts.values():
        ttfont = getattr(font, "ttfont", None)  # a TTFFont (core fonts have none)
        if ttfont is not None:
            font_cache.drop_layout_tables(ttfont)


def _add_page_boxes(pdf: FPDF, settings: PrintSettings) -> None:
    def box(values: tuple[float, float, float, float]) -> str:
        return "[" + " ".join(f"{v:.2f}" for v in values) + "]"

    boxed = type(
        "_BoxedPage",
        (PDFPage,),
        {
            "__slots__": (),
            "trim_box": box(settings.trim_box),
            "bleed_box": box(settings.bleed_box),
        },
    )
    for page in pdf.pages.values():
        page.__class__ = boxed
