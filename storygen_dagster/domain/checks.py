"""Quality and safety checks on a story's values: pure functions returning the problems found
(an empty list passes). The asset step runs them per story and reports them as asset checks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from storygen_dagster.domain.models import MAX_SCENES, MIN_SCENES, StructuredStory

# Words that must not appear in a story for 3-6 year olds (whole words, any case). Deliberately
# short and blunt: a moderation endpoint is the real answer for open-ended prompts.
DEFAULT_BLOCKLIST = (
    "kill",
    "killed",
    "killing",
    "murder",
    "blood",
    "bloody",
    "gun",
    "guns",
    "knife",
    "stab",
    "suicide",
    "drugs",
    "cocaine",
    "beer",
    "whiskey",
    "naked",
    "sex",
    "sexy",
    "corpse",
    "torture",
    "hate",
    "stupid",
)

REQUIRED_CHILD_FIELDS = ("name", "age", "gender", "personality", "favorites", "physical_appearance")


def scene_count_problems(wanted: int, stored_scene_numbers: Sequence[int]) -> list[str]:
    """The stored scenes are exactly 1..story_meta.scene_count (`wanted`), which is 3-5."""
    problems = []
    if not MIN_SCENES <= wanted <= MAX_SCENES:
        problems.append(f"story_meta.scene_count is {wanted}, outside {MIN_SCENES}-{MAX_SCENES}")
    numbers = sorted(stored_scene_numbers)
    if numbers != list(range(1, wanted + 1)):
        problems.append(f"scenes stored {numbers} but story_meta.scene_count is {wanted}")
    return problems


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def required_field_problems(
    story: StructuredStory,
    visual_profile: Mapping[str, Any] | None = None,
    base_style: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every field the prompts and the book need is present and not empty."""
    problems = []
    child = story.child_profile.model_dump()
    problems += [f"child_profile.{f} is empty" for f in REQUIRED_CHILD_FIELDS if _blank(child[f])]
    if story.side_character.exists and not story.side_character.description:
        problems.append("side_character.description is empty")
    if visual_profile is not None:
        if _blank(visual_profile.get("character_prompt")):
            problems.append("visual_profile.character_prompt is empty")
        if story.side_character.exists and _blank(visual_profile.get("side_character_prompt")):
            problems.append("visual_profile.side_character_prompt is empty")
    if base_style is not None:
        for f in ("art_style", "lighting", "atmosphere", "color_scheme", "composition_rules"):
            if _blank(base_style.get(f)):
                problems.append(f"base_style.{f} is empty")
    return problems


def prompt_budget_problems(prompts: Mapping[int, str], budget: int) -> list[str]:
    return [
        f"scene {n}: image prompt is {len(p)} characters, budget {budget}"
        for n, p in sorted(prompts.items())
        if len(p) > budget
    ]


def _blocklist_re(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(re.escape(w.strip().lower()) for w in words if w.strip()))
    return re.compile(rf"\b({alternatives})\b", re.IGNORECASE)


def unsafe_terms(
    texts: Mapping[str, str | None], words: Iterable[str] = DEFAULT_BLOCKLIST
) -> list[str]:
    """'where: word' for every blocked word found in the named texts."""
    pattern = _blocklist_re(words)
    found = []
    for where, text in texts.items():
        for match in pattern.finditer(text or ""):
            found.append(f"{where}: {match.group(1).lower()}")
    return found


def story_texts(
    story: StructuredStory, moments: Mapping[int, str | None], prompts: Mapping[int, str | None]
) -> dict[str, str | None]:
    """Every generated text a reader or the image model sees, named for the report."""
    texts: dict[str, str | None] = {"title": story.story_meta.story_title}
    for s in story.scenes:
        texts[f"scene {s.scene_number} text"] = s.text
        texts[f"scene {s.scene_number} moment"] = moments.get(s.scene_number)
        texts[f"scene {s.scene_number} image prompt"] = prompts.get(s.scene_number)
    return texts
