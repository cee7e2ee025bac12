"""The six story asset keys, named once."""

import dagster as dg

STRUCTURED = dg.AssetKey("structured_story")
VISUAL = dg.AssetKey("visual_profile")
STYLE = dg.AssetKey("base_style")
MOMENTS = dg.AssetKey("scene_moments")
IMAGES = dg.AssetKey("scene_images")
BOOK = dg.AssetKey("storybook")
STORY_FIELDS = {"visual_profile": VISUAL, "base_style": STYLE}
