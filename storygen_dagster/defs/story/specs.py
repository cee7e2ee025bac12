"""The story assets' specs: key, group, kinds, lineage, description, code version and IO
manager of each (materialized together by `story_assets`, defs/story/assets.py)."""

from typing import Any

import dagster as dg

from storygen_dagster.defs.io_managers import OBJECTS_IO, POSTGRES_IO
from storygen_dagster.defs.story.keys import (
    BOOK,
    EPUB,
    IMAGES,
    MOMENTS,
    PDF,
    SHEET,
    STRUCTURED,
    STYLE,
    VISUAL,
)
from storygen_dagster.engine.vocabulary import CODE_VERSIONS

_STORY: dict[str, Any] = {"group_name": "story", "kinds": {"python", "postgres"}, "skippable": True}
_IMAGES: dict[str, Any] = {
    "group_name": "images",
    "kinds": {"python", "postgres", "s3"},
    "skippable": True,
}
_BOOKS: dict[str, Any] = {
    "group_name": "books",
    "kinds": {"python", "pdf", "s3"},
    "skippable": True,
}

SPECS = [
    dg.AssetSpec(
        STRUCTURED,
        description="Child profile, side character, story meta and 3-5 scenes of text.",
        code_version=CODE_VERSIONS["structured_story"],
        **_STORY,
    ).with_io_manager_key(POSTGRES_IO),
    dg.AssetSpec(
        VISUAL,
        deps=[STRUCTURED],
        description="Character and side-character prompts, the same in every scene.",
        code_version=CODE_VERSIONS["visual_profile"],
        **_STORY,
    ).with_io_manager_key(POSTGRES_IO),
    dg.AssetSpec(
        STYLE,
        deps=[STRUCTURED],
        description="One art style, lighting, atmosphere, palette and composition per book.",
        code_version=CODE_VERSIONS["base_style"],
        **_STORY,
    ).with_io_manager_key(POSTGRES_IO),
    dg.AssetSpec(
        MOMENTS,
        deps=[STRUCTURED],
        description="Per scene, the single visual moment to draw, chosen from the story so far.",
        code_version=CODE_VERSIONS["scene_moments"],
        **_STORY,
    ).with_io_manager_key(POSTGRES_IO),
    dg.AssetSpec(
        SHEET,
        deps=[VISUAL, STYLE],
        description="One reference picture of the child and the friend per story (neutral pose, "
        "plain background), drawn with the story's locked seed; every scene is drawn from it.",
        code_version=CODE_VERSIONS["character_sheet"],
        **_IMAGES,
    ).with_io_manager_key(OBJECTS_IO),
    dg.AssetSpec(
        IMAGES,
        deps=[MOMENTS, VISUAL, STYLE, SHEET],
        description="One picture per scene from base style + setting + character + moment "
        "+ side character (prompt composed in code within a length budget), with the "
        "story's seed and its character sheet as the reference where the model takes one.",
        code_version=CODE_VERSIONS["scene_images"],
        **_IMAGES,
    ).with_io_manager_key(OBJECTS_IO),
    dg.AssetSpec(
        BOOK,
        deps=[IMAGES, STRUCTURED, SHEET],
        description="The finished book: an HTML page with the title and every scene's text "
        "and picture. Held (not built) when the content-safety check fails.",
        code_version=CODE_VERSIONS["storybook"],
        **_IMAGES,
    ).with_io_manager_key(OBJECTS_IO),
    dg.AssetSpec(
        PDF,
        deps=[BOOK, IMAGES],
        description="The print-ready PDF: a square picture book with cover, title page, a page "
        "per scene with the picture to the bleed, and a back cover (trim and bleed boxes set, "
        "fonts embedded; STORYGEN_PRINT_TRIM_IN / _BLEED_IN).",
        code_version=CODE_VERSIONS["storybook_pdf"],
        **_BOOKS,
    ).with_io_manager_key(OBJECTS_IO),
    dg.AssetSpec(
        EPUB,
        deps=[BOOK, IMAGES],
        description="The EPUB 3 e-book: cover, title page, one page per scene with the picture "
        "(the scene's moment as alt text) and its text, navigation, language and title.",
        code_version=CODE_VERSIONS["storybook_epub"],
        **_BOOKS,
    ).with_io_manager_key(OBJECTS_IO),
]
