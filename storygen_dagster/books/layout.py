"""Where everything goes on a printed page. Pictures reach the bleed (the page edge, past the
trim); text stays in the safe area, `SAFE_IN` inside the trim, where no cut can reach it.
Text that does not fit at its size is set smaller, down to a floor, and then the picture above
it gives up height (cropped, never squeezed)."""

from __future__ import annotations

from typing import BinaryIO

from fpdf import FPDF
from PIL import Image

from storygen_dagster.domain.printing import POINTS_PER_INCH, PrintBook, PrintSettings

SAFE_IN = 0.375
TEXT_SIZES = (18, 17, 16, 15, 14, 13, 12)
BACK_TITLE_SIZES = (20, 18, 16, 15, 14, 13, 12)  # the back cover's title and blurb, in pairs
BACK_BLURB_SIZES = (14, 13, 12, 12, 11, 11, 10)
LINE = 1.4  # line height / font size
Color = tuple[int, int, int]


class Pages:
    def __init__(
        self,
        pdf: FPDF,
        settings: PrintSettings,
        family: str,
        ink: Color,
        paper: Color,
        accent: Color,
    ):
        self.pdf, self.family = pdf, family
        self.ink, self.paper, self.accent = ink, paper, accent
        self.size = settings.page_pt
        self.inset = settings.bleed_pt + SAFE_IN * POINTS_PER_INCH  # the safe area's edge
        self.width = self.size - 2 * self.inset

    # -- building blocks -----------------------------------------------------------------------
    def _fill(self, color: Color, x: float = 0, y: float = 0, w=None, h=None) -> None:
        self.pdf.set_fill_color(*color)
        self.pdf.rect(x, y, w or self.size, h or self.size, style="F")

    def _picture(self, png: BinaryIO, x: float, y: float, w: float, h: float) -> None:
        """The picture scaled to cover the box (centred, the overflow cropped)."""
        with Image.open(png) as im:
            iw, ih = im.size
        png.seek(0)
        scale = max(w / iw, h / ih)
        dw, dh = iw * scale, ih * scale
        with self.pdf.rect_clip(x, y, w, h):
            self.pdf.image(png, x=x + (w - dw) / 2, y=y + (h - dh) / 2, w=dw, h=dh)

    def _ink(self, color: Color) -> None:
        """Text colour. The fill colour too: fpdf2 2.8 wraps each line in q/Q when the two
        differ, and then omits the font (Tf) on the next line after a fallback-font run, so
        that line printed without a font ("No font in show", its text lost)."""
        self.pdf.set_text_color(*color)
        self.pdf.set_fill_color(*color)

    def _lines(self, text: str, size: float, style: str = "", width: float | None = None) -> int:
        self.pdf.set_font(self.family, style, size)
        lines = self.pdf.multi_cell(
            width or self.width, size * LINE, text, align="C", dry_run=True, output="LINES"
        )
        return len(lines)  # type: ignore[arg-type]  # output="LINES" returns the lines

    def _text(self, text: str, size: float, y: float, style: str = "", color=None) -> float:
        """Centred text from `y` in the safe width; the y below it."""
        self.pdf.set_font(self.family, style, size)
        self._ink(color or self.ink)
        self.pdf.set_xy(self.inset, y)
        self.pdf.multi_cell(self.width, size * LINE, text, align="C")
        return self.pdf.get_y()

    def _fit(self, text: str, sizes, style: str, max_height: float) -> tuple[float, float]:
        """The largest size of `sizes` at which `text` fits `max_height`: (size, height)."""
        for size in sizes:
            height = self._lines(text, size, style) * size * LINE
            if height <= max_height:
                return size, height
        return size, height

    # -- pages ---------------------------------------------------------------------------------
    def cover(self, title: str, child_name: str, png: BinaryIO) -> None:
        self._picture(png, 0, 0, self.size, self.size)
        size, title_h = self._fit(title, (34, 30, 26, 22, 20), "B", self.size * 0.3)
        sub = f"a story for {child_name}"
        sub_h = self._lines(sub, 18) * 18 * LINE
        pad = 14
        band_h = title_h + sub_h + 3 * pad
        with self.pdf.local_context(fill_opacity=0.88):
            self._fill(self.paper, self.inset - pad, self.inset - pad, self.width + 2 * pad, band_h)
        y = self._text(title, size, self.inset, "B", self.accent)
        self._text(sub, 18, y + pad / 2)

    def title_page(self, book: PrintBook) -> None:
        self._fill(self.paper)
        size, height = self._fit(book.title, (30, 26, 22, 20), "B", self.size * 0.35)
        y = self.size * 0.36 - height / 2
        y = self._text(book.title, size, y, "B", self.accent)
        self.pdf.set_draw_color(*self.accent)
        self.pdf.set_line_width(1.5)
        mid = self.size / 2
        self.pdf.line(mid - 40, y + 16, mid + 40, y + 16)
        y = self._text(f"a story for {book.child_name}, age {book.age}", 17, y + 34)
        self._text(f"about {book.value_to_teach}", 15, y + 6)

    def scene(self, text: str, png: BinaryIO, number: int) -> None:
        self._fill(self.paper)
        with Image.open(png) as im:
            iw, ih = im.size
        png.seek(0)
        pad, folio = 18, 22  # space above the text; room for the page number below it
        bottom = self.size - self.inset - folio
        picture_h = min(self.size * ih / iw, self.size * 0.8)
        size, text_h = self._fit(text, TEXT_SIZES, "", bottom - picture_h - 2 * pad)
        # Still too long at the smallest size: the picture gives up height (never below 45%).
        picture_h = max(min(picture_h, bottom - text_h - 2 * pad), self.size * 0.45)
        self._picture(png, 0, 0, self.size, picture_h)
        room = bottom - picture_h
        self._text(text, size, picture_h + max(pad, (room - text_h) / 2))
        self.pdf.set_font(self.family, "", 10)
        self._ink(self.ink)
        self.pdf.set_xy(self.inset, self.size - self.inset - 12)
        self.pdf.cell(self.width, 12, str(number), align="C")

    def centered_text(self, lines: list[tuple[str, float, str]]) -> None:
        self._fill(self.paper)
        total = sum(self._lines(t, s, st) * s * LINE + 10 for t, s, st in lines)
        y = (self.size - total) / 2
        for text, size, style in lines:
            color = self.accent if style == "B" else self.ink
            y = self._text(text, size, y, style, color) + 10

    def drawing_page(self, child_name: str) -> None:
        """A frame to draw in: the padding pages a bound book needs, made useful."""
        self._fill(self.paper)
        y = self._text(f"Draw your favourite moment, {child_name}!", 18, self.inset, "B")
        self.pdf.set_draw_color(*self.accent)
        self.pdf.set_line_width(2)
        self.pdf.set_dash_pattern(dash=8, gap=6)
        self.pdf.rect(self.inset, y + 16, self.width, self.size - self.inset - y - 16)
        self.pdf.set_dash_pattern()

    def back_cover(self, book: PrintBook, png: BinaryIO) -> None:
        """The last picture framed, the title and a blurb under it, the credit at the foot.
        A long title is set smaller, then the picture shrinks (never below a quarter of the
        page), so the text never runs into the credit or past the safe area."""
        self._fill(self.accent)
        blurb = (
            f"A picture book for {book.child_name}, age {book.age}, about {book.value_to_teach}."
        )
        top, below_picture, gap = self.inset + 20, 30, 10
        credit_y = self.size - self.inset - 14
        bottom = credit_y - gap  # the text's lowest line ends above the credit
        side = self.size * 0.42
        for title_size, blurb_size in zip(BACK_TITLE_SIZES, BACK_BLURB_SIZES, strict=True):
            text_h = (
                self._lines(book.title, title_size, "B") * title_size * LINE
                + gap
                + self._lines(blurb, blurb_size) * blurb_size * LINE
            )
            if top + side + below_picture + text_h <= bottom:
                break
        side = max(min(side, bottom - text_h - below_picture - top), self.size * 0.25)
        x = (self.size - side) / 2
        self.pdf.set_fill_color(*self.paper)
        self.pdf.rect(x - 6, top - 6, side + 12, side + 12, style="F")
        self._picture(png, x, top, side, side)
        white = (255, 255, 255)
        y = self._text(book.title, title_size, top + side + below_picture, "B", white)
        self._text(blurb, blurb_size, y + gap, "", white)
        self._text("Made with storygen", 9, credit_y, "", white)
