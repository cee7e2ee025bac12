"""The printed book's geometry and content, as plain values: a square page of `trim_in` inches
with `bleed_in` on every side (what a printer cuts off), the points every renderer and the
preflight agree on, and the pixels a picture needs to print sharp."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

POINTS_PER_INCH = 72.0
# The picture-book sizes print-on-demand services offer (square trims, inches).
COMMON_TRIMS_IN = (7.0, 7.5, 8.0, 8.5, 10.0, 12.0)
LANGUAGE_TAG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")


@dataclass(frozen=True)
class PrintSettings:
    trim_in: float = 8.5
    bleed_in: float = 0.125
    min_dpi: int = 300
    font: str | None = None  # a TrueType file; None: Kurinto Sans (the weblate-fonts package)
    language: str = "en"

    def __post_init__(self) -> None:
        if not 4 <= self.trim_in <= 14:
            raise ValueError(f"print trim_in: {self.trim_in} in is not between 4 and 14")
        if not 0 <= self.bleed_in <= 0.5:
            raise ValueError(f"print bleed_in: {self.bleed_in} in is not between 0 and 0.5")
        if not 1 <= self.min_dpi <= 1200:
            raise ValueError(f"print min_dpi: {self.min_dpi} is not between 1 and 1200")
        if not LANGUAGE_TAG.match(self.language):
            raise ValueError(f"book language: {self.language!r} is not a BCP 47 tag like 'en'")

    @classmethod
    def from_settings(cls, settings) -> PrintSettings:
        """From storygen's Settings (STORYGEN_PRINT_*, STORYGEN_BOOK_LANGUAGE)."""
        font = settings.print_font
        return cls(
            trim_in=settings.print_trim_in,
            bleed_in=settings.print_bleed_in,
            min_dpi=settings.print_min_dpi,
            font=str(font) if font else None,
            language=settings.book_language,
        )

    @property
    def page_pt(self) -> float:
        """Width (= height) of the PDF page: the trim plus the bleed on both sides."""
        return (self.trim_in + 2 * self.bleed_in) * POINTS_PER_INCH

    @property
    def bleed_pt(self) -> float:
        return self.bleed_in * POINTS_PER_INCH

    @property
    def trim_box(self) -> tuple[float, float, float, float]:
        b = self.bleed_pt
        return (b, b, self.page_pt - b, self.page_pt - b)

    @property
    def bleed_box(self) -> tuple[float, float, float, float]:
        return (0.0, 0.0, self.page_pt, self.page_pt)

    def fingerprint(self) -> dict:
        """What of the settings changes the rendered files (so a changed trim re-renders)."""
        return {
            "trim_in": self.trim_in,
            "bleed_in": self.bleed_in,
            "font": self.font,
            "language": self.language,
        }


def effective_dpi(pixels: int, printed_pt: float) -> float:
    """Pixels per inch of a picture `pixels` wide drawn `printed_pt` points wide."""
    return pixels / (printed_pt / POINTS_PER_INCH) if printed_pt > 0 else 0.0


def pixels_needed(printed_pt: float, dpi: int) -> int:
    """The pixels a picture drawn `printed_pt` points wide needs at `dpi`, rounded up to 8
    (image models want multiples of 8)."""
    return int(math.ceil(printed_pt / POINTS_PER_INCH * dpi / 8) * 8)


@dataclass(frozen=True)
class BookScene:
    scene_number: int
    text: str
    moment: str  # the picture's alt text
    png: bytes


@dataclass(frozen=True)
class PrintBook:
    """Everything a print or e-book renderer needs of one story."""

    story_id: str
    title: str
    child_name: str
    age: int
    value_to_teach: str
    created_at: datetime  # fixed per story: the files' dates, so a re-render is byte-identical
    scenes: list[BookScene] = field(default_factory=list)

    def texts(self) -> str:
        """Every character the book prints (to choose fonts that cover them)."""
        return " ".join(
            [self.title, self.child_name, self.value_to_teach, *(s.text for s in self.scenes)]
        )


def page_plan(scene_numbers: list[int]) -> list[str]:
    """The pages in order: cover, (bookplate), title, one per scene, the end, (drawing pages),
    back. Padded to a multiple of 4 pages, as saddle-stitched and most bound books need."""
    pages = ["cover", "title", *(f"scene:{n}" for n in scene_numbers), "end", "back"]
    if len(pages) % 4:
        pages.insert(1, "bookplate")
    while len(pages) % 4:
        pages.insert(-1, "draw")
    return pages
