"""Input fingerprints: for each asset of a story (and each scene), the sha256 of exactly the
upstream values it was generated from. Stored with every value (input_fingerprints columns,
materialization metadata); a value is stale when the fingerprint of its inputs *now* differs.

The scene moment of scene N is fingerprinted on the child's name and scene N's own text: the
earlier scenes are context for the model, but editing scene 2 re-draws scene 2 only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import StoryRequest, StructuredStory
from storygen_dagster.domain.printing import PrintSettings


def structured_story(request: StoryRequest, guidance: str | None = None) -> str:
    """The request, and a reviewer's note when the story is written again after a rejection."""
    if guidance:
        return content_hash({"request": request.content(), "guidance": guidance})
    return content_hash({"request": request.content()})


def visual_profile(story: StructuredStory) -> str:
    return content_hash(
        {
            "child_profile": story.child_profile.model_dump(mode="json"),
            "side_character": story.side_character.model_dump(mode="json"),
        }
    )


def base_style(story: StructuredStory) -> str:
    return content_hash({"story_meta": story.story_meta.model_dump(mode="json")})


def story_level(field: str, story: StructuredStory) -> str:
    return {"visual_profile": visual_profile, "base_style": base_style}[field](story)


def scene_moment(story: StructuredStory, scene_number: int) -> str:
    text = next(s.text for s in story.scenes if s.scene_number == scene_number)
    return content_hash({"child": story.child_profile.name, "text": text})


def character_sheet(
    story: StructuredStory, profile: Mapping[str, Any], style: Mapping[str, Any], seed: int
) -> str:
    """What the sheet's prompt is made of (the cast and the art style), and the locked seed."""
    return content_hash(
        {
            "child": story.child_profile.name,
            "side_character": story.side_character.model_dump(mode="json"),
            "visual_profile": dict(profile),
            "art_style": style.get("art_style"),
            "seed": seed,
        }
    )


def scene_image(
    story: StructuredStory,
    profile: Mapping[str, Any],
    style: Mapping[str, Any],
    moment: str,
    sheet: str | None,
    seed: int | None,
) -> str:
    """`sheet`: the character sheet's sha256 (a new or uploaded sheet redraws every scene)."""
    return content_hash(
        {
            "setting": story.story_meta.setting_description,
            "child": story.child_profile.name,
            "side_character": story.side_character.model_dump(mode="json"),
            "visual_profile": dict(profile),
            "base_style": dict(style),
            "moment": moment,
            "sheet": sheet,
            "seed": seed,
        }
    )


def storybook(
    story: StructuredStory,
    pages: Sequence[tuple[int, str, str | None]],
    sheet: str | None,
    language: str,
) -> str:
    """Everything the HTML book shows: the title, the dedication (child, age, value), the cast
    page (the sheet and its title, which names the side character), the pages (scene_number,
    text, image_sha256, in order) and the language it declares."""
    return content_hash(
        {
            "title": story.story_meta.story_title,
            "child": story.child_profile.name,
            "age": story.child_profile.age,
            "value": story.story_meta.value_to_teach,
            "side_character": story.side_character.model_dump(mode="json"),
            "pages": [list(p) for p in pages],
            "sheet": sheet,
            "language": language,
        }
    )


def print_file(
    asset: str,
    story: StructuredStory,
    pages: Sequence[tuple[int, str, str | None, str | None]],
    settings: PrintSettings,
) -> str:
    """storybook_pdf / storybook_epub. pages: (scene_number, text, moment, image_sha256). Of
    the print settings, the PDF depends on all, the EPUB (it reflows) on its language only."""
    shaping = (
        settings.fingerprint() if asset == "storybook_pdf" else {"language": settings.language}
    )
    return content_hash(
        {
            "title": story.story_meta.story_title,
            "child": story.child_profile.name,
            "age": story.child_profile.age,
            "value": story.story_meta.value_to_teach,
            "pages": [list(p) for p in pages],
            "settings": shaping,
        }
    )
