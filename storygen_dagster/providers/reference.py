"""How a scene's image request carries the character sheet, resolved once per model at start
from STORYGEN_IMAGE_REFERENCE (auto | none | image_url | reference_images | image_edit).

Together's image API (docs, 2026-12): FLUX.1 Kontext pro/max/dev take one reference as
`image_url`; FLUX.2 pro/flex take `image_url` or a `reference_images` list, FLUX.2 dev only
`reference_images`; FLUX.1-schnell documents no reference input. OpenAI's images API: the
generations endpoint takes no image; the GPT Image models (gpt-image-1, -1-mini, -1.5) take it
on the edits endpoint (`image_edit`: POST images/edits, multipart/form-data with the sheet as
the `image` file); DALL-E's edits only repaint transparent areas, no reference. `auto` picks the
model's field (`reference_images` where both exist) and falls back to `none` (the locked seed
and the character card in the prompt) for a model that takes no reference or that this table
does not know (logged). An explicit mode fails at start, naming the setting and the model, when
the model is known not to take it or when the table does not know the model (the models known
to take that mode are listed: sending a field a model ignores would pay for pictures drawn
without the sheet)."""

from __future__ import annotations

import base64
import logging

from storygen_dagster.domain.ids import content_hash

log = logging.getLogger("storygen.providers")

MODES = ("auto", "none", "image_url", "reference_images", "image_edit")
# Model-name fragments (lower case) and the reference fields the model takes, first = auto's.
TOGETHER_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flux.1-kontext", ("image_url",)),
    ("flux.2-dev", ("reference_images",)),
    ("flux.2", ("reference_images", "image_url")),
    ("flux.1-schnell", ()),
    ("flux.1-dev", ()),
    ("flux.1.1-pro", ()),
    ("flux.1-pro", ()),
)
OPENAI_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gpt-image", ("image_edit",)),
    ("dall-e", ()),
)
EDIT_FILENAME = "character-sheet.png"


def png_data_uri(png: bytes) -> tuple[str, str]:
    """(the marker a request is keyed and ledgered with, the data URI actually sent): megabytes
    of base64 never reach the call cache, and the key still changes with the picture."""
    marker = f"data:image/png;sha256={content_hash(png)};bytes={len(png)}"
    return marker, "data:image/png;base64," + base64.b64encode(png).decode()


class ReferenceConfigError(ValueError):
    """STORYGEN_IMAGE_REFERENCE cannot work with the configured provider and model."""


def edit_request(body: dict, png: bytes) -> tuple[dict, dict, dict]:
    """An images/edits request carrying `png` as the input image: (the request as keyed and
    ledgered, with the sheet as its sha256 marker; the form fields sent; the files sent)."""
    marker, _ = png_data_uri(png)
    fields = {k: str(v) for k, v in body.items()}
    return {**body, "image": marker}, fields, {"image": (EDIT_FILENAME, png, "image/png")}


def _table(provider: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return OPENAI_FIELDS if provider == "openai" else TOGETHER_FIELDS


def fields_of(provider: str, model: str) -> tuple[str, ...] | None:
    """The reference fields a model takes (empty: none), or None when the table does not know
    the model."""
    name = model.lower()
    return next((fields for key, fields in _table(provider) if key in name), None)


def resolve(provider: str, model: str, mode: str) -> str:
    """'none', 'sheet' (offline), 'image_url', 'reference_images' or 'image_edit' for this
    provider and model (see module doc)."""
    where = f"STORYGEN_IMAGE_REFERENCE={mode}"
    if mode not in MODES:
        raise ReferenceConfigError(f"{where}: use one of {', '.join(MODES)}")
    if provider == "offline":
        return "none" if mode == "none" else "sheet"
    fields = fields_of(provider, model)
    if mode == "none":
        return "none"
    if mode == "auto":
        if fields is None:
            log.info(
                "%s: model %s is not in the reference table; scenes are drawn from the locked "
                "seed and the character card (set STORYGEN_IMAGE_REFERENCE=none to say so)",
                where,
                model,
            )
        return fields[0] if fields else "none"
    if fields is None:
        known = " or ".join(f"'{key}'" for key, takes in _table(provider) if mode in takes)
        if not known:
            raise ReferenceConfigError(f"{where}: the {provider} images API takes no {mode}")
        raise ReferenceConfigError(
            f"{where}: model {model} is not known to take {mode}; the models known to take it "
            f"have {known} in their name; use auto or none"
        )
    if mode not in fields:
        takes = " or ".join(fields) if fields else "no reference image"
        raise ReferenceConfigError(f"{where}: model {model} takes {takes}; use auto or none")
    return mode
