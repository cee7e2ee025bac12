"""Pictures that fail the offline review, for the fake to serve."""

from __future__ import annotations

import io

from PIL import Image

from storygen_dagster.providers.offline_painter import paint_scene
from tests.conftest import TEST_HEIGHT, TEST_WIDTH


def with_blank_quarter(fake, prompt: str) -> bytes:
    """A painted scene whose top-left quarter is one flat colour."""
    img = Image.open(io.BytesIO(paint_scene(prompt, TEST_WIDTH, TEST_HEIGHT, 3))).convert("RGB")
    img.paste((200, 200, 200), (0, 0, TEST_WIDTH // 2, TEST_HEIGHT // 2))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
