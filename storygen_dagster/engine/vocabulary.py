"""The nine story assets' code versions and checks; their names are domain/assets.py's (the
names Dagster keys, Postgres provenance entries, the audit log and `storygen status` use)."""

from dataclasses import dataclass

from storygen_dagster.domain.assets import (
    ASSETS,
    BOOK,
    EPUB,
    IMAGES,
    MOMENTS,
    PDF,
    SHEET,
    STORY_FIELDS,
    STRUCTURED,
    STYLE,
    VISUAL,
)
from storygen_dagster.domain.likeness import LIKENESS_THRESHOLD
from storygen_dagster.domain.prompts import PROMPT_VERSIONS

__all__ = [
    "ASSETS",
    "BOOK",
    "CHECKS",
    "CODE_VERSIONS",
    "EPUB",
    "IMAGES",
    "MOMENTS",
    "PDF",
    "REVIEW_CHECK",
    "SHEET",
    "STORY_FIELDS",
    "STRUCTURED",
    "STYLE",
    "VISUAL",
    "CheckDef",
]

# The picture review's check on scene_images (issue 16); also the ledger's asset of its calls.
REVIEW_CHECK = "illustrations_reviewed"

# The code version of each asset: the prompt template's version for LLM assets, so a value
# built by an older prompt is visible as built by older code.
CODE_VERSIONS = {
    STRUCTURED: f"structured_story-{PROMPT_VERSIONS['structured_story']}",
    VISUAL: f"visual_profile-{PROMPT_VERSIONS['visual_profile']}",
    STYLE: f"base_style-{PROMPT_VERSIONS['base_style']}",
    MOMENTS: f"scene_moment-{PROMPT_VERSIONS['scene_moment']}",
    SHEET: "character_sheet-v1",
    # v2: one locked seed per story and the character sheet as the pictures' reference.
    IMAGES: "scene_images-v2",
    # v2: declares STORYGEN_BOOK_LANGUAGE (was "en" always); its fingerprint covers the
    # dedication, the cast page's title and the language.
    BOOK: "storybook-v2",
    PDF: "storybook_pdf-v1",
    EPUB: "storybook_epub-v1",
}


@dataclass(frozen=True)
class CheckDef:
    asset: str
    name: str
    description: str
    blocking: bool = True  # a failure stops the story (its later stages do not run)
    warn: bool = False  # severity WARN: reported, never stops anything


_UP_TO_DATE = (
    "This story's value was built by the current prompt version and model, from inputs whose "
    "fingerprint has not changed since (WARN; names what is out of date)."
)

CHECKS = (
    CheckDef(
        STRUCTURED,
        "scene_count",
        "Stored scenes are exactly 1..story_meta.scene_count, and that is 3-5.",
    ),
    CheckDef(
        STRUCTURED, "required_fields", "Every child profile field the prompts need is present."
    ),
    CheckDef(
        VISUAL, "required_fields", "character_prompt (and side_character_prompt when there is one)."
    ),
    CheckDef(
        STYLE,
        "required_fields",
        "art_style, lighting, atmosphere, color_scheme, composition_rules.",
    ),
    CheckDef(
        IMAGES,
        "prompt_budget",
        "Every composed image prompt is within STORYGEN_IMAGE_PROMPT_MAX_CHARS.",
    ),
    CheckDef(
        IMAGES, "images_valid", "Every image decodes, has the configured size and is not blank."
    ),
    CheckDef(SHEET, "images_valid", "The sheet decodes, has the configured size and is not blank."),
    CheckDef(
        IMAGES,
        "character_consistent",
        "The child in every scene looks like the character sheet. With a vision model "
        "(STORYGEN_VISION_MODEL), its child_matches_card verdict on the picture the scene holds "
        "(stored by the picture review, no new call); else, for offline pictures, the "
        "colour-histogram intersection of the figure where the painter placed it with the "
        f"sheet's figure (passes at >= {LIKENESS_THRESHOLD}). Metadata per scene: the measure, "
        "the reason and who measured it. WARN: reported, never stops a story.",
        blocking=False,
        warn=True,
    ),
    CheckDef(
        IMAGES,
        REVIEW_CHECK,
        "Every scene picture reviewed (STORYGEN_VISION_MODEL: a vision model, the offline "
        "checks, or none): the moment depicted, the child as the character card and sheet, the "
        "friend present when the text names one, no text in the picture, nothing unsafe for the "
        "child's age. A failing picture is redrawn with the reviewer's fix at most "
        "STORYGEN_MAX_REDRAWS times; one still failing is kept and flagged (WARN), or, when it "
        "fails the safety criterion, holds the story as needs_review (ERROR, never published). "
        "Metadata: each scene's verdicts and redraws, the review's calls and cost.",
        blocking=False,
        warn=True,
    ),
    CheckDef(
        BOOK,
        "content_safety",
        "No blocked word in the title, scene texts, moments or image prompts; a story that "
        "fails is held (status 'held'), not published.",
    ),
    CheckDef(
        MOMENTS,
        "approved",
        "The review gate (STORYGEN_REVIEW=story, or a request with review: true): a person "
        "approved the story's text before any picture is made. WARN while it awaits review "
        "or is rewritten after a rejection; each decision is reported here when it is made.",
        warn=True,
    ),
    CheckDef(
        PDF,
        "print_preflight",
        "The PDF as a printer reads it: page count, trim and bleed boxes, fonts embedded, and "
        "each picture's resolution at its printed size against STORYGEN_PRINT_MIN_DPI (WARN, "
        "saying what pixel size would pass). A missing picture, box or font fails it (ERROR).",
        blocking=False,
        warn=True,
    ),
    *(CheckDef(a, "up_to_date", _UP_TO_DATE, blocking=False, warn=True) for a in ASSETS),
)
