"""The nine story asset keys, from the engine's vocabulary."""

import dagster as dg

from storygen_dagster.engine import vocabulary as v

STRUCTURED = dg.AssetKey(v.STRUCTURED)
VISUAL = dg.AssetKey(v.VISUAL)
STYLE = dg.AssetKey(v.STYLE)
MOMENTS = dg.AssetKey(v.MOMENTS)
SHEET = dg.AssetKey(v.SHEET)
IMAGES = dg.AssetKey(v.IMAGES)
BOOK = dg.AssetKey(v.BOOK)
PDF = dg.AssetKey(v.PDF)
EPUB = dg.AssetKey(v.EPUB)
STORY_FIELDS = {v.VISUAL: VISUAL, v.STYLE: STYLE}
