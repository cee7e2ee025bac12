"""The offline painter: real PNGs drawn with Pillow, no network, deterministic for a prompt
and seed."""

from __future__ import annotations

import asyncio
import io
import random
import time

from PIL import Image, ImageDraw, ImageFilter

from storygen_dagster.providers.base import CallContext, GeneratedImage, ImageService
from storygen_dagster.providers.limits import global_slots
from storygen_dagster.providers.offline import seeded_rng


class OfflineImageService(ImageService):
    """Real PNGs drawn with Pillow: sky, ground, sun or moon, trees, the child and a friend,
    placed and coloured from the prompt so every scene looks different."""

    provider_name = "offline"
    model = "storygen-offline-painter-v1"

    def __init__(self, latency_s: float = 0.0, max_concurrency: int = 16):
        self.latency_s = latency_s
        self.max_concurrency = max_concurrency

    async def generate_image(
        self, prompt: str, ctx: CallContext, *, width: int, height: int, seed: int
    ) -> GeneratedImage:
        started = time.perf_counter()
        if self.latency_s:
            async with global_slots(self.max_concurrency):
                await asyncio.sleep(self.latency_s)
        # Drawing is CPU work; keep the event loop free for the other scenes' calls.
        png = await asyncio.to_thread(paint_scene, prompt, width, height, seed)
        return self._generated(
            png,
            prompt,
            width,
            height,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )


NAMED_COLORS = {
    "orange": (240, 140, 40),
    "blue": (60, 110, 220),
    "green": (60, 170, 90),
    "yellow": (245, 205, 50),
    "purple": (150, 80, 200),
    "red": (210, 50, 50),
    "pink": (240, 130, 180),
    "teal": (40, 160, 160),
}


def _prompt_color(prompt: str, rng: random.Random) -> tuple[int, int, int]:
    """The first colour word of the character description dresses the child (as it would in a
    real model's picture); otherwise a random one."""
    lowered = prompt.lower()
    found = sorted(
        (lowered.find(name), rgb) for name, rgb in NAMED_COLORS.items() if name in lowered
    )
    if found:
        return found[0][1]
    return (rng.randint(60, 240), rng.randint(60, 240), rng.randint(60, 240))


def paint_scene(prompt: str, width: int, height: int, seed: int) -> bytes:
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
    # The child: body in a colour from the prompt, head, arms.
    body = _prompt_color(prompt.split(", a ", 1)[-1], rng)
    cx, feet = rng.randint(width // 4, 3 * width // 5), horizon + rng.randint(60, 140)
    draw.rectangle([cx - 35, feet - 150, cx + 35, feet - 40], fill=body)
    draw.rectangle([cx - 30, feet - 40, cx - 8, feet], fill=(60, 60, 110))
    draw.rectangle([cx + 8, feet - 40, cx + 30, feet], fill=(60, 60, 110))
    draw.line([(cx - 35, feet - 130), (cx - 75, feet - 90)], fill=body, width=14)
    draw.line([(cx + 35, feet - 130), (cx + 75, feet - rng.randint(60, 170))], fill=body, width=14)
    draw.ellipse([cx - 38, feet - 225, cx + 38, feet - 150], fill=(236, 190, 150))
    draw.ellipse([cx - 40, feet - 235, cx + 40, feet - 190], fill=(rng.randint(40, 140), 50, 30))
    # The friend: a round animal beside the child.
    ax = cx + rng.choice([-1, 1]) * rng.randint(140, 260)
    fur = (rng.randint(150, 230), rng.randint(80, 160), rng.randint(30, 90))
    draw.ellipse([ax - 55, feet - 80, ax + 55, feet], fill=fur)
    draw.ellipse([ax - 30, feet - 130, ax + 30, feet - 70], fill=fur)
    draw.polygon([(ax - 28, feet - 115), (ax - 18, feet - 155), (ax - 6, feet - 122)], fill=fur)
    draw.polygon([(ax + 28, feet - 115), (ax + 18, feet - 155), (ax + 6, feet - 122)], fill=fur)
    for ex in (ax - 11, ax + 11):
        draw.ellipse([ex - 4, feet - 108, ex + 4, feet - 100], fill=(20, 20, 20))
    img = img.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()
