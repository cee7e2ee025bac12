"""Image checks: pure functions on bytes (Pillow is not I/O)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import cast


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
    from PIL import Image, ImageStat

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
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
        rgb.thumbnail(max_size)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=70)
        return out.getvalue()


UPLOAD_FORMATS = ("PNG", "JPEG")
MAX_UPLOAD_SIDE = 8192  # pixels: a bigger picture is refused before it is decoded


def checked_sheet(data: bytes, name: str, *, max_bytes: int, width: int, height: int) -> bytes:
    """A user's character sheet as the PNG the pipeline stores: refused (ImageCheckError naming
    `name` and the limit) when it is over max_bytes, not a decodable PNG or JPEG, too large or
    blank; else fitted into width x height on its own background colour, nothing cropped."""
    from PIL import Image, ImageOps, ImageStat

    if len(data) > max_bytes:
        raise ImageCheckError(
            f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit for a character "
            "sheet (STORYGEN_SHEET_MAX_BYTES)"
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind, size = img.format, img.size
            if kind not in UPLOAD_FORMATS:
                raise ImageCheckError(f"{name}: a {kind} image; a character sheet is PNG or JPEG")
            if max(size) > MAX_UPLOAD_SIDE:
                raise ImageCheckError(
                    f"{name}: {size[0]}x{size[1]} pixels is over the {MAX_UPLOAD_SIDE}-pixel limit"
                )
            img.load()
            rgb = img.convert("RGB")
    except ImageCheckError:
        raise
    except Exception as exc:  # any decoder error means "not an image"
        raise ImageCheckError(f"{name}: not a decodable PNG or JPEG ({exc})") from exc
    stddev = ImageStat.Stat(rgb.convert("L").resize((64, 48))).stddev[0]
    if stddev < 4.0:
        raise ImageCheckError(f"{name}: the picture is blank (luminance stddev {stddev:.2f} < 4)")
    w, h = rgb.size
    corner = cast(tuple[int, int, int], rgb.getpixel((0, 0)))
    fitted = ImageOps.pad(rgb, (width, height), color=corner) if (w, h) != (width, height) else rgb
    out = io.BytesIO()
    fitted.save(out, format="PNG")
    return out.getvalue()
