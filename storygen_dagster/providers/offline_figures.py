"""The offline painter's cast: the child and the friend as the character card in a prompt
describes them (skin, hair, eyes, top, bottom, shoes, height, build; the friend's animal),
drawn on a character sheet in the layout domain/likeness.py defines. The same card always
gives the same sheet, whatever the seed: the card is what a sheet is drawn from."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storygen_dagster.domain.ids import content_hash

if TYPE_CHECKING:
    from PIL import ImageDraw


RGB = tuple[int, int, int]
SHEET_BACKGROUND: RGB = (250, 248, 240)
COLORS: dict[str, RGB] = {
    "orange": (240, 140, 40),
    "blue": (60, 110, 220),
    "green": (60, 170, 90),
    "yellow": (245, 205, 50),
    "purple": (150, 80, 200),
    "red": (210, 50, 50),
    "pink": (240, 130, 180),
    "teal": (40, 160, 160),
    "brown": (120, 80, 45),
    "black": (35, 35, 40),
    "grey": (130, 130, 135),
    "gray": (130, 130, 135),
}
SKIN: dict[str, RGB] = {
    "dark brown": (100, 65, 40),
    "light brown": (190, 140, 100),
    "brown": (150, 100, 65),
    "olive": (200, 165, 120),
    "peach": (250, 200, 170),
    "light": (245, 215, 190),
}
HAIR: dict[str, RGB] = {
    "dark brown": (70, 45, 25),
    "black": (30, 30, 35),
    "brown": (110, 70, 40),
    "auburn": (150, 60, 30),
    "blond": (235, 200, 110),
    "red": (190, 60, 30),
}
ANIMALS: dict[str, RGB] = {
    "fox": (230, 120, 40),
    "owl": (140, 100, 70),
    "rabbit": (190, 190, 200),
    "bunny": (190, 190, 200),
    "turtle": (80, 140, 70),
    "bear": (120, 80, 45),
    "hedgehog": (150, 110, 80),
    "otter": (110, 80, 55),
    "elephant": (160, 160, 170),
    "mouse": (170, 170, 175),
    "cat": (230, 160, 60),
    "dog": (180, 130, 80),
}
HEIGHTS = {"small": 0.9, "short": 0.9, "tall": 1.08}
BUILDS = {"slim": 0.85, "sturdy": 1.15, "round": 1.1}


@dataclass(frozen=True)
class Cast:
    skin: RGB
    hair: RGB
    eyes: RGB
    top: RGB
    bottom: RGB
    shoes: RGB
    height: float
    build: float
    friend: RGB | None  # None: no friend on the card


def _hashed(text: str) -> RGB:
    """A colour for words that name none: fixed for the text, never near the background."""
    h = content_hash(text.strip().lower())
    return (40 + int(h[0:2], 16) % 160, 40 + int(h[2:4], 16) % 160, 40 + int(h[4:6], 16) % 160)


def _lookup(text: str, table: dict[str, RGB]) -> RGB | None:
    """The entry whose name comes first in `text` (longer names first at the same place)."""
    lowered = text.lower()
    found = [(m.start(), -len(k), v) for k, v in table.items() for m in re.finditer(k, lowered)]
    return min(found)[2] if found else None


def _color(text: str, table: dict[str, RGB] = COLORS) -> RGB:
    return _lookup(text, table) or _hashed(text)


def _factor(text: str, table: dict[str, float]) -> float:
    return next((v for k, v in table.items() if k in text.lower()), 1.0)


def read_card(prompt: str) -> Cast:
    """The cast a prompt describes: its ", "-separated parts that name the skin, the hair and
    the eyes, and the three after the eyes (top, bottom, shoes); a friend after 'Friend:' or
    'With '."""
    pieces = re.split(r"\b(Friend:|With )", prompt, maxsplit=1)
    child, friend = pieces[0], pieces[2] if len(pieces) == 3 else ""
    parts = [p.strip() for p in re.split(r"[,.;]", child) if p.strip()]

    def part(word: str) -> str:
        return next((p for p in parts if word in p.lower()), "")

    eyes = part(" eyes")
    after = parts[parts.index(eyes) + 1 :] if eyes else []
    clothes = [*after, "", "", ""][:3] if after else ["top " + child, "bottom", "shoes"]
    return Cast(
        skin=_lookup(part(" skin"), SKIN) or _color(part(" skin") or "skin"),
        hair=_lookup(part(" hair"), HAIR) or _color(part(" hair") or "hair"),
        eyes=_color(eyes or "eyes"),
        top=_color(clothes[0] or "top"),
        bottom=_color(clothes[1] or "bottom"),
        shoes=_color(clothes[2] or "shoes"),
        height=_factor(child, HEIGHTS),
        build=_factor(child, BUILDS),
        friend=_color(friend.split(".")[0], ANIMALS) if friend.strip() else None,
    )


def draw_child(draw: ImageDraw.ImageDraw, cast: Cast, cx: float, feet: float, tall: float):
    """The child standing at (cx, feet), `tall` pixels high, arms down (the neutral pose)."""
    u = tall * cast.height
    half = 0.16 * u * cast.build
    leg = 0.09 * u
    draw.rectangle([cx - half + 2, feet - 0.3 * u, cx - 2, feet - 0.05 * u], fill=cast.bottom)
    draw.rectangle([cx + 2, feet - 0.3 * u, cx + half - 2, feet - 0.05 * u], fill=cast.bottom)
    draw.rectangle([cx - half, feet - 0.05 * u, cx - 1, feet], fill=cast.shoes)
    draw.rectangle([cx + 1, feet - 0.05 * u, cx + half, feet], fill=cast.shoes)
    draw.rectangle([cx - half, feet - 0.64 * u, cx + half, feet - 0.28 * u], fill=cast.top)
    for side in (-1, 1):
        x = cx + side * (half + leg / 2)
        draw.rectangle([x - leg / 2, feet - 0.62 * u, x + leg / 2, feet - 0.36 * u], fill=cast.top)
        draw.ellipse([x - leg / 2, feet - 0.38 * u, x + leg / 2, feet - 0.3 * u], fill=cast.skin)
    r = 0.16 * u
    head = feet - 0.64 * u - r
    draw.ellipse([cx - r, head - r, cx + r, head + r], fill=cast.skin)
    draw.chord([cx - r * 1.08, head - r * 1.12, cx + r * 1.08, head + r * 0.5], 180, 360, cast.hair)
    for ex in (cx - r * 0.4, cx + r * 0.4):
        e = max(1.5, r * 0.12)
        draw.ellipse([ex - e, head - e, ex + e, head + e], fill=cast.eyes)


def draw_friend(draw: ImageDraw.ImageDraw, fur: RGB, cx: float, feet: float, tall: float):
    """A round animal: body, head, two ears, two eyes."""
    b = tall * 0.55
    draw.ellipse([cx - b * 0.55, feet - b, cx + b * 0.55, feet], fill=fur)
    hr = tall * 0.25
    hy = feet - b - hr * 0.6
    draw.ellipse([cx - hr, hy - hr, cx + hr, hy + hr], fill=fur)
    for s in (-1, 1):
        draw.polygon(
            [(cx + s * hr * 0.9, hy - hr * 0.3), (cx + s * hr * 0.6, hy - hr * 1.5), (cx, hy - hr)],
            fill=fur,
        )
        e = max(1.5, hr * 0.14)
        draw.ellipse([cx + s * hr * 0.4 - e, hy - e, cx + s * hr * 0.4 + e, hy + e], fill=(20,) * 3)


def paint_sheet(prompt: str, width: int, height: int) -> bytes:
    """The sheet for the card in `prompt`: the child on the left, the friend on the right, a
    plain background."""
    from PIL import Image, ImageDraw

    cast = read_card(prompt)
    img = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(img)
    tall = min(height * 0.8, width * 0.55)  # portrait pictures: the child stays on its side
    draw_child(draw, cast, width * 0.28, height * 0.93, tall)
    if cast.friend is not None:
        draw_friend(draw, cast.friend, width * 0.77, height * 0.93, tall * 0.62)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
