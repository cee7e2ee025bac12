"""The character sheet's layout and how alike a picture's child is to it (pure; Pillow is not I/O).

A sheet shows the child in its left part (`CHILD_REGION`) and the friend in its right part
(`FRIEND_REGION`), on a plain background. A figure is the pixels of a region that differ from
the background (the median of the sheet's four corners), cropped to their bounding box: the
same cut-out for any sheet, drawn by the offline painter or uploaded by a user.

The offline likeness measure: the child's figure from the sheet and the box of the scene where
the figure was placed, both seen through the figure's own mask (the scene's box resized to the
figure), as colour histograms of 4 levels per channel (64 bins, normalised), compared by
histogram intersection (sum of the bin-wise minimum): 1.0 the same colours in the same
proportions, 0.0 no colour in common. Measured on the six demo stories' scenes (25 scenes,
each also painted with the 5 other children): drawn from their own sheet 0.90-0.95 at 320x240
(median 0.93) and 0.97-0.98 at 1024x768; another child median 0.16-0.17, at most 0.67 (a child
in the same colours). The threshold, 0.8, sits between the two with a margin of 0.1 either
side (tests/test_character_unit.py and tests/test_character_edit.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


LIKENESS_THRESHOLD = 0.8
LEVELS = 4  # per channel: 64 bins, coarse enough to forgive resampling, fine enough for a shirt
BACKGROUND_TOLERANCE = 40  # max channel difference still counted as background

Box = tuple[int, int, int, int]
# Fractions of the sheet (left, top, right, bottom).
CHILD_REGION = (0.0, 0.0, 0.55, 1.0)
FRIEND_REGION = (0.55, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Figure:
    """A figure cut out of a sheet: its pixels and the mask of what is not background."""

    image: Image.Image  # RGB, cropped to the figure
    mask: Image.Image  # L, 255 on the figure

    @property
    def aspect(self) -> float:
        return self.image.width / self.image.height


def open_rgb(data: bytes) -> Image.Image:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def background(sheet: Image.Image) -> tuple[int, int, int]:
    w, h = sheet.size
    corners = [sheet.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]
    return tuple(sorted(c[i] for c in corners)[1] for i in range(3))  # type: ignore[return-value,index]


def figure(sheet: Image.Image, region: tuple[float, float, float, float]) -> Figure | None:
    """The figure in `region` of the sheet, or None when the region is all background."""
    from PIL import Image, ImageChops

    w, h = sheet.size
    box = (int(region[0] * w), int(region[1] * h), int(region[2] * w), int(region[3] * h))
    part = sheet.crop(box)
    plain = Image.new("RGB", part.size, background(sheet))
    # Grey-level difference understates a hue change: take the largest channel difference.
    channels = ImageChops.difference(part, plain).split()
    diff = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    mask = diff.point(lambda v: 255 if v > BACKGROUND_TOLERANCE else 0)
    bbox = mask.getbbox()
    if bbox is None:
        return None
    return Figure(image=part.crop(bbox), mask=mask.crop(bbox))


def place(fig: Figure, cx: float, feet: float, scale: float, width: int, height: int) -> Box:
    """The box a figure takes in a width x height picture: centred at cx, standing at feet
    (fractions of the picture), `scale` of the picture's height tall."""
    h = max(8, int(height * scale))
    w = max(4, int(h * fig.aspect))
    x0, y1 = int(cx * width - w / 2), int(feet * height)
    return (x0, y1 - h, x0 + w, y1)


def _histogram(img: Image.Image, mask: Image.Image) -> list[float]:
    step = 256 // LEVELS
    quantized = img.point(lambda v: v // step)
    r, g, b = quantized.split()
    counts = [0] * LEVELS**3
    for pr, pg, pb, m in zip(r.getdata(), g.getdata(), b.getdata(), mask.getdata(), strict=True):
        if m:
            counts[(pr * LEVELS + pg) * LEVELS + pb] += 1
    total = sum(counts) or 1
    return [c / total for c in counts]


def likeness(sheet_png: bytes, scene_png: bytes, box: Box) -> float:
    """Histogram intersection of the sheet's child and the scene's `box` through the child's
    mask (0..1); 0.0 when the sheet shows no child or the box is outside the picture."""
    fig = figure(open_rgb(sheet_png), CHILD_REGION)
    scene = open_rgb(scene_png)
    inside = (max(box[0], 0), max(box[1], 0), min(box[2], scene.width), min(box[3], scene.height))
    if fig is None or inside[0] >= inside[2] or inside[1] >= inside[3]:
        return 0.0
    # The part of the box inside the picture, against the same part of the figure's mask.
    fx = fig.image.width / (box[2] - box[0])
    fy = fig.image.height / (box[3] - box[1])
    crop = (
        int((inside[0] - box[0]) * fx),
        int((inside[1] - box[1]) * fy),
        max(int((inside[2] - box[0]) * fx), 1),
        max(int((inside[3] - box[1]) * fy), 1),
    )
    mask = fig.mask.crop(crop)
    seen = scene.crop(inside).resize(mask.size)
    ours, theirs = _histogram(fig.image.crop(crop), mask), _histogram(seen, mask)
    return round(sum(min(a, b) for a, b in zip(ours, theirs, strict=True)), 4)
