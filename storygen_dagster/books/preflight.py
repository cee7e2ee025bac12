"""Print preflight of a finished PDF, read back with pypdf the way a printer's tools read it:
page count, page size, trim and bleed boxes, each picture's effective resolution at the size
it is printed, fonts embedded. Errors make the file unprintable (a missing picture, box or
font); warnings are what a printer would flag (pictures under the minimum dpi)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from pypdf import PdfReader
from pypdf.generic import ContentStream, DictionaryObject

from storygen_dagster.domain.printing import PrintSettings, effective_dpi, page_plan, pixels_needed

_PICTURE_PAGES = ("cover", "scene:", "back")
Matrix = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Picture:
    page: int  # 1-based
    pixels: tuple[int, int]
    printed_pt: tuple[float, float]

    @property
    def dpi(self) -> float:
        return min(
            effective_dpi(self.pixels[0], self.printed_pt[0]),
            effective_dpi(self.pixels[1], self.printed_pt[1]),
        )


@dataclass
class Preflight:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return self.errors + self.warnings


def preflight(pdf: bytes, settings: PrintSettings, scene_numbers: list[int]) -> Preflight:
    report = Preflight()
    try:
        reader = PdfReader(io.BytesIO(pdf))
        pages = list(reader.pages)
    except Exception as exc:
        report.errors.append(f"the PDF does not open: {type(exc).__name__}: {exc}")
        return report
    plan = page_plan(scene_numbers)
    report.facts["pages"] = len(pages)
    if len(pages) != len(plan):
        report.errors.append(f"{len(pages)} pages, expected {len(plan)} ({', '.join(plan)})")
    elif len(pages) % 4:
        report.warnings.append(f"{len(pages)} pages: bound books need a multiple of 4")
    pictures: list[Picture] = []
    fonts: dict[str, bool] = {}
    for number, (page, role) in enumerate(zip(pages, plan, strict=False), start=1):
        report.errors += _box_problems(page, number, settings)
        found = _pictures(page, number)
        if role.startswith(_PICTURE_PAGES) and not found:
            report.errors.append(f"page {number} ({role}) has no picture")
        pictures += found
        fonts.update(_fonts(page))
    report.errors += [
        f"font {name} is not embedded" for name, ok in sorted(fonts.items()) if not ok
    ]
    report.facts.update(
        trim_in=settings.trim_in,
        bleed_in=settings.bleed_in,
        fonts=sorted(fonts),
        pictures=len(pictures),
        min_dpi=round(min((p.dpi for p in pictures), default=0.0), 1),
    )
    report.warnings += _resolution_warnings(pictures, settings.min_dpi)
    return report


def _box(page, name: str) -> list[float] | None:
    value = page.get(f"/{name}")
    return [float(v) for v in value] if value is not None else None


def _box_problems(page, number: int, settings: PrintSettings) -> list[str]:
    problems = []
    media = _box(page, "MediaBox") or []
    size = settings.page_pt
    if (
        len(media) != 4
        or abs(media[2] - media[0] - size) > 0.5
        or abs(media[3] - media[1] - size) > 0.5
    ):
        problems.append(
            f"page {number}: MediaBox {media} is not {size:.1f} pt square (trim + bleed)"
        )
    for name, want in (("TrimBox", settings.trim_box), ("BleedBox", settings.bleed_box)):
        box = _box(page, name)
        if box is None:
            problems.append(f"page {number} has no {name}")
        elif any(abs(a - b) > 0.5 for a, b in zip(box, want, strict=True)):
            problems.append(f"page {number}: {name} {box} is not {list(want)}")
    return problems


def matrix_product(m: Matrix, n: Matrix) -> Matrix:
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + b * c2,
        a * b2 + b * d2,
        c * a2 + d * c2,
        c * b2 + d * d2,
        e * a2 + f * c2 + e2,
        e * b2 + f * d2 + f2,
    )


def _pictures(page, number: int) -> list[Picture]:
    """Every image the page draws, with its pixel size and printed size (from the CTM)."""
    resources = page.get("/Resources") or DictionaryObject()
    xobjects = resources.get("/XObject") or DictionaryObject()
    contents = page.get_contents()
    if contents is None:
        return []
    ctm: Matrix = (1, 0, 0, 1, 0, 0)
    stack: list[Matrix] = []
    found = []
    for operands, operator in ContentStream(contents, page.pdf).operations:
        if operator == b"q":
            stack.append(ctm)
        elif operator == b"Q" and stack:
            ctm = stack.pop()
        elif operator == b"cm":
            ctm = matrix_product(tuple(float(v) for v in operands), ctm)  # type: ignore[arg-type]
        elif operator == b"Do" and operands[0] in xobjects:
            xobject: Any = xobjects[operands[0]].get_object()
            if xobject.get("/Subtype") == "/Image":
                a, b, c, d = ctm[:4]
                printed = ((a * a + b * b) ** 0.5, (c * c + d * d) ** 0.5)
                pixels = (int(xobject["/Width"]), int(xobject["/Height"]))
                found.append(Picture(number, pixels, printed))
    return found


def _fonts(page) -> dict[str, bool]:
    """{font name: embedded} of the page's fonts (a Type0 font's descendant holds the file)."""
    resources = page.get("/Resources") or DictionaryObject()
    out = {}
    for ref in (resources.get("/Font") or DictionaryObject()).values():
        font = ref.get_object()
        target = font
        if font.get("/Subtype") == "/Type0":
            target = font["/DescendantFonts"][0].get_object()
        descriptor = target.get("/FontDescriptor")
        descriptor = descriptor.get_object() if descriptor is not None else {}
        embedded = any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        out[str(font.get("/BaseFont", "?")).lstrip("/")] = embedded
    return out


def _resolution_warnings(pictures: list[Picture], min_dpi: int) -> list[str]:
    low = [p for p in pictures if p.dpi < min_dpi - 0.5]
    if not low:
        return []
    need_w = max(pixels_needed(p.printed_pt[0], min_dpi) for p in low)
    need_h = max(pixels_needed(p.printed_pt[1], min_dpi) for p in low)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for p in low:
        groups.setdefault((*p.pixels, round(p.dpi)), []).append(p.page)
    shown = ", ".join(
        f"{w}x{h} px at {dpi} dpi on page{'s' if len(pages) > 1 else ''} "
        + ", ".join(map(str, pages))
        for (w, h, dpi), pages in groups.items()
    )
    return [
        f"{len(low)} of {len(pictures)} pictures print under {min_dpi} dpi ({shown}); "
        f"pictures of at least {need_w}x{need_h} px would pass (docs/printing.md)"
    ]
