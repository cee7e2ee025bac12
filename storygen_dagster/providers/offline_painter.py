"""The offline painter: real PNGs drawn with Pillow, no network, deterministic for a prompt,
seed and reference. A sheet prompt gets a character sheet (offline_figures.py); a scene gets a
landscape with the child and the friend cut out of the character sheet (the reference, or
with STORYGEN_IMAGE_REFERENCE=none the sheet its prompt's character card describes) and placed
where the prompt and seed say, so the cast looks the same in every scene."""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING

from storygen_dagster.domain.compose import SHEET_PROMPT_PREFIX
from storygen_dagster.domain.likeness import (
    CHILD_REGION,
    FRIEND_REGION,
    Box,
    Figure,
    figure,
    likeness,
    open_rgb,
    place,
)
from storygen_dagster.providers.base import CallContext, GeneratedImage, ImageService
from storygen_dagster.providers.limits import global_slots
from storygen_dagster.providers.offline import seeded_rng
from storygen_dagster.providers.offline_figures import paint_sheet

if TYPE_CHECKING:
    from PIL import Image


CHILD_SCALE = 0.5  # of the picture's height


class OfflineImageService(ImageService):
    """Real PNGs drawn with Pillow: sky, ground, sun or moon, trees, the child and a friend,
    placed from the prompt and seed so every scene looks different and the cast the same."""

    provider_name = "offline"
    model = "storygen-offline-painter-v2"

    def __init__(self, latency_s: float = 0.0, max_concurrency: int = 16, reference: str = "sheet"):
        self.latency_s = latency_s
        self.max_concurrency = max_concurrency
        self.reference = reference

    async def generate_image(
        self,
        prompt: str,
        ctx: CallContext,
        *,
        width: int,
        height: int,
        seed: int,
        reference: bytes | None = None,
    ) -> GeneratedImage:
        started = time.perf_counter()
        if self.latency_s:
            async with global_slots(self.max_concurrency):
                await asyncio.sleep(self.latency_s)
        sheet = reference if self.uses_reference else None
        # Drawing is CPU work; keep the event loop free for the other scenes' calls.
        png = await asyncio.to_thread(paint, prompt, width, height, seed, sheet)
        return self._generated(
            png,
            prompt,
            width,
            height,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            seed=seed,
            reference=self.reference if sheet is not None else "none",
        )

    def character_likeness(
        self, sheet_png: bytes, scene_png: bytes, prompt: str, seed: int
    ) -> float | None:
        from PIL import Image

        with Image.open(io.BytesIO(scene_png)) as img:
            size = img.size
        box = child_box(prompt, seed, *size, sheet_png)
        return None if box is None else likeness(sheet_png, scene_png, box)


def paint(prompt: str, width: int, height: int, seed: int, reference: bytes | None = None) -> bytes:
    """A sheet for a sheet prompt, else a scene."""
    if prompt.startswith(SHEET_PROMPT_PREFIX):
        return paint_sheet(prompt, width, height)
    return paint_scene(prompt, width, height, seed, reference)


def _cast(prompt: str, width: int, height: int, reference: bytes | None):
    sheet = open_rgb(reference or paint_sheet(prompt, width, height))
    return figure(sheet, CHILD_REGION), figure(sheet, FRIEND_REGION)


def _spots(prompt: str, seed: int, child: Figure, width: int, height: int):
    """Where the child and the friend stand: from the prompt and seed alone (not from the
    landscape's random draws), so the check can find the child again."""
    rng = seeded_rng("figure", prompt, seed)
    cx, feet = rng.uniform(0.25, 0.6), rng.uniform(0.86, 0.97)
    box = place(child, cx, feet, CHILD_SCALE, width, height)
    side = rng.choice([-1, 1])
    friend_cx = cx + side * ((box[2] - box[0]) / width + 0.12)
    if not 0.08 < friend_cx < 0.92:
        friend_cx = cx - side * ((box[2] - box[0]) / width + 0.12)
    return box, friend_cx, feet


def child_box(
    prompt: str, seed: int, width: int, height: int, reference: bytes | None
) -> Box | None:
    """The box the painter put the child in (None: the sheet shows no child)."""
    child, _ = _cast(prompt, width, height, reference)
    return None if child is None else _spots(prompt, seed, child, width, height)[0]


def _paste(img: Image.Image, fig: Figure, box: Box) -> None:
    from PIL import Image

    size = (box[2] - box[0], box[3] - box[1])
    img.paste(fig.image.resize(size), box[:2], fig.mask.resize(size, Image.Resampling.NEAREST))


def paint_scene(
    prompt: str, width: int, height: int, seed: int, reference: bytes | None = None
) -> bytes:
    from PIL import Image, ImageDraw, ImageFilter

    rng = seeded_rng("image", prompt, seed)
    night = any(w in prompt.lower() for w in ("night", "moon", "dark", "evening"))
    top = (20, 24, 70) if night else (rng.randint(90, 150), rng.randint(160, 210), 245)
    bottom = (70, 60, 120) if night else (250, rng.randint(200, 235), rng.randint(170, 210))
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    horizon = int(height * rng.uniform(0.55, 0.7))
    for y in range(horizon):
        f = y / max(horizon - 1, 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * f) for a, b in zip(top, bottom, strict=True)),
        )
    ground = (rng.randint(40, 90), rng.randint(120, 170), rng.randint(50, 90))
    draw.rectangle([0, horizon, width, height], fill=ground)
    # Rolling hills.
    for _ in range(3):
        cx, r = rng.randint(0, width), rng.randint(width // 6, width // 3)
        shade = tuple(max(0, c - rng.randint(5, 30)) for c in ground)
        draw.ellipse([cx - r, horizon - r // 3, cx + r, horizon + r], fill=shade)
    sx, sy, sr = rng.randint(60, width - 60), rng.randint(40, horizon // 2), rng.randint(35, 60)
    draw.ellipse(
        [sx - sr, sy - sr, sx + sr, sy + sr], fill=(245, 240, 200) if night else (255, 210, 80)
    )
    if night:
        for _ in range(60):
            x, y = rng.randint(0, width), rng.randint(0, horizon)
            draw.point([(x, y), (x + 1, y)], fill=(255, 255, 220))
    for _ in range(rng.randint(3, 7)):
        tx, th = rng.randint(0, width), rng.randint(90, 200)
        base = horizon + rng.randint(0, 40)
        draw.rectangle([tx - 8, base - th // 3, tx + 8, base], fill=(110, 75, 45))
        draw.ellipse(
            [tx - 45, base - th, tx + 45, base - th // 3 + 20], fill=(40, rng.randint(110, 160), 60)
        )
    img = img.filter(ImageFilter.SMOOTH)  # the landscape only: the cast stays crisp
    child, friend = _cast(prompt, width, height, reference)
    if child is not None:
        box, friend_cx, feet = _spots(prompt, seed, child, width, height)
        if friend is not None:
            scale = (box[3] - box[1]) / child.image.height * friend.image.height / height
            _paste(img, friend, place(friend, friend_cx, feet, scale, width, height))
        _paste(img, child, box)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()
