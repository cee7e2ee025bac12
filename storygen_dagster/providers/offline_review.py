"""The offline picture reviewer: the checks that can really be made on a PNG and its prompt,
with no model and no network (deterministic, free). A quarter of the picture that is one flat
colour fails `moment_depicted` (nothing is drawn there); the child's top in the colour the
character card names must be in the picture (`child_matches_card`); the friend's animal, when
the card names one, must be drawn in its colour (`side_character_present`). `no_text` and
`safe_for_age` need a vision model: they pass, saying they were not judged."""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING

from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.picture_review import Verdict
from storygen_dagster.providers.base import CallContext
from storygen_dagster.providers.offline_figures import RGB, read_card
from storygen_dagster.providers.reviewer import PictureReviewer, Reviewed, ReviewSubject

if TYPE_CHECKING:
    from PIL import Image


FLAT_STDDEV = 1.5  # a quadrant whose every channel varies less than this is blank
COLOR_TOLERANCE = 16  # per channel
# Shares of the picture's pixels, measured on 96 offline scenes of 24 demo-like stories at
# 320x240: the top's colour covers 2.7% or more, a drawn friend's 2.8% or more; with the friend
# left out, its colour still covers 2% or more in 28 of 96 (a landscape of the same colour: a
# missing friend the offline check cannot see), below 2% in 68.
MIN_TOP_SHARE = 0.01
MIN_FRIEND_SHARE = 0.02
NOT_JUDGED = "not judged offline (needs a vision model: STORYGEN_VISION_MODEL)"


def blank_quadrants(img: Image.Image) -> list[str]:
    from PIL import ImageStat

    w, h = img.size
    boxes = {
        "top left": (0, 0, w // 2, h // 2),
        "top right": (w // 2, 0, w, h // 2),
        "bottom left": (0, h // 2, w // 2, h),
        "bottom right": (w // 2, h // 2, w, h),
    }
    return [
        name
        for name, box in boxes.items()
        if max(ImageStat.Stat(img.crop(box)).stddev) < FLAT_STDDEV
    ]


def color_share(img: Image.Image, color: RGB) -> float:
    """The share of pixels within COLOR_TOLERANCE of `color` in every channel."""
    import numpy as np  # ~0.1 s of import: not before a run's first provider call
    from PIL import Image

    small = img.resize((min(img.width, 320), min(img.height, 240)), Image.Resampling.NEAREST)
    pixels = np.asarray(small, dtype=np.int16)
    near = (np.abs(pixels - np.array(color, dtype=np.int16)) <= COLOR_TOLERANCE).all(axis=2)
    return float(near.mean())


def judge(png: bytes, subject: ReviewSubject) -> tuple[dict[str, tuple[bool, str]], str]:
    """(verdicts, suggested fix) for the picture."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as opened:
        img = opened.convert("RGB")
    cast = read_card(subject.prompt)
    fixes = []
    blank = blank_quadrants(img)
    moment = (
        (False, f"the {', '.join(blank)} of the picture is blank: nothing is drawn there")
        if blank
        else (True, "every part of the picture has something drawn (offline check)")
    )
    if blank:
        fixes.append("fill the whole picture with the scene")
    top_share = color_share(img, cast.top)
    child = (
        (True, f"the top's colour covers {top_share:.1%} of the picture")
        if top_share >= MIN_TOP_SHARE
        else (False, f"the top's colour {cast.top} is missing from the picture")
    )
    if not child[0]:
        fixes.append(f"show {subject.child_name}'s top clearly, as the character card says")
    friend: tuple[bool, str] = (True, "the card names no friend")
    if cast.friend is not None and subject.friend:
        share = color_share(img, cast.friend)
        friend = (
            (True, f"the friend's colour covers {share:.1%} of the picture")
            if share >= MIN_FRIEND_SHARE
            else (False, "the friend is not drawn")
        )
        if not friend[0]:
            fixes.append(f"draw the friend ({subject.friend[:60]}) beside {subject.child_name}")
    verdicts = {
        "moment_depicted": moment,
        "child_matches_card": child,
        "side_character_present": friend,
        "no_text": (True, NOT_JUDGED),
        "safe_for_age": (True, NOT_JUDGED),
    }
    return verdicts, "; ".join(fixes)


class OfflinePictureReviewer(PictureReviewer):
    name = "offline"
    model = "storygen-offline-reviewer-v1"

    async def review(self, png: bytes, subject: ReviewSubject, ctx: CallContext) -> Reviewed:
        started = time.perf_counter()
        verdicts, fix = await asyncio.to_thread(judge, png, subject)
        verdict = Verdict(
            criteria=verdicts, suggested_fix=fix, reviewer=self.name, model=self.model
        )
        prov = Provenance(
            provider=self.name,
            model=self.model,
            prompt_name="picture_review",
            prompt_version="offline-v1",
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return Reviewed(verdict, prov)
