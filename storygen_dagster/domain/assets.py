"""The names of the nine story assets, in pipeline order: Dagster's asset keys, the provenance
entries in Postgres, the audit log and `storygen status` all use these (engine/vocabulary.py
adds their code versions and checks)."""

from __future__ import annotations

STRUCTURED = "structured_story"
VISUAL = "visual_profile"
STYLE = "base_style"
MOMENTS = "scene_moments"
SHEET = "character_sheet"
IMAGES = "scene_images"
BOOK = "storybook"
PDF = "storybook_pdf"
EPUB = "storybook_epub"
# The character sheet is a picture: it comes after the review gate (after the moments).
ASSETS = (STRUCTURED, VISUAL, STYLE, MOMENTS, SHEET, IMAGES, BOOK, PDF, EPUB)
PRINT_FILES = {PDF: "pdf_uri", EPUB: "epub_uri"}  # asset -> its stories column
STORY_FIELDS = (VISUAL, STYLE)  # the story-level values generated from the structured story
LLM_ASSETS = (STRUCTURED, VISUAL, STYLE, MOMENTS)

# The prompt template behind each LLM asset (scene_moments renders 'scene_moment').
PROMPT_OF = {
    STRUCTURED: "structured_story",
    VISUAL: "visual_profile",
    STYLE: "base_style",
    MOMENTS: "scene_moment",
}


def models_by_asset(llm_model: str, image_model: str) -> dict[str, str]:
    """The model each provider-built asset is made by (what `up_to_date` compares with)."""
    return {**dict.fromkeys(LLM_ASSETS, llm_model), SHEET: image_model, IMAGES: image_model}
