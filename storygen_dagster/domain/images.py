"""Image checks: pure functions on bytes (Pillow is not I/O)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageStat


class ImageCheckError(ValueError):
    pass


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    stddev: float


def inspect_png(
    data: bytes, *, width: int | None = None, height: int | None = None, min_stddev: float = 4.0
) -> ImageInfo:
    """Decode `data`; fail if it is not an image, has the wrong size, or is blank (a filtered
    image from a provider comes back as a single colour, usually black)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = img.size
            stat = ImageStat.Stat(img.convert("L").resize((64, 48)))
    except Exception as exc:  # any decoder error means "not an image"
        raise ImageCheckError(f"image does not decode: {exc}") from exc
    if width and height and size != (width, height):
        raise ImageCheckError(f"image is {size[0]}x{size[1]}, expected {width}x{height}")
    stddev = stat.stddev[0]
    if stddev < min_stddev:
        raise ImageCheckError(f"image is blank (luminance stddev {stddev:.2f} < {min_stddev})")
    return ImageInfo(width=size[0], height=size[1], stddev=stddev)


def thumbnail_jpeg(data: bytes, max_size: tuple[int, int] = (256, 192)) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
        rgb.thumbnail(max_size)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=70)
        return out.getvalue()
