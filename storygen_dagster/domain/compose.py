"""Full image prompt composition with a length budget.

The parts, in reading order: base style, setting, the child, the moment, the side character.
When the whole is over budget the least important parts give way first: the side character,
then the finer points of the style, then the setting, then the character description; the
moment (what the picture is of) is cut last.

With a character sheet sent as the picture's reference, the prompt asks for the characters
exactly as in the reference; without one (a model that takes no reference, such as
FLUX.1-schnell), the character card (the child and the friend as the visual profile describes
them) is kept whole in every prompt, and the locked seed does the rest.
"""

from dataclasses import dataclass

from storygen_dagster.domain.models import BaseStyle, SideCharacter, VisualProfile

DEFAULT_PROMPT_BUDGET = 900
# How a sheet's prompt begins: what makes any model (and the offline painter) draw a sheet.
SHEET_PROMPT_PREFIX = "Character reference sheet"
CARD_MIN_CHARS = 240  # the card is never cut below this in a reference-less prompt


@dataclass
class _Part:
    text: str
    priority: int  # lower gives way first
    min_chars: int  # shorten down to this before dropping (0: may be dropped)


def _shorten(text: str, limit: int) -> str:
    """Cut at a word boundary and close the sentence; '' when nothing useful fits."""
    if len(text) <= limit:
        return text
    if limit < 12:
        return ""
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:. ")
    return f"{cut}." if cut else ""


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else f"{text}."


def character_card(
    child_name: str, visual_profile: VisualProfile, side_character: SideCharacter
) -> str:
    """The cast in words: the same text on the sheet's prompt and every reference-less scene."""
    card = f"{child_name}: {_sentence(visual_profile.character_prompt)}"
    if side_character.exists and visual_profile.side_character_prompt:
        card += f" Friend: {_sentence(visual_profile.side_character_prompt)}"
    return card


def compose_sheet_prompt(
    *, base_style: BaseStyle, card: str, child_name: str, budget: int = DEFAULT_PROMPT_BUDGET
) -> str:
    """One reference picture of the cast: full body, neutral pose, plain background."""
    head = f"{SHEET_PROMPT_PREFIX}, {base_style.art_style}."
    tail = (
        f"Full body, neutral standing pose, facing the viewer; {child_name} on the left, the "
        "friend on the right; plain light background, no scenery, no text."
    )
    room = budget - len(head) - len(tail) - 2
    return " ".join(p for p in (head, _shorten(card, max(room, 0)), tail) if p)[:budget]


def compose_image_prompt(
    *,
    base_style: BaseStyle,
    setting: str,
    child_name: str,
    visual_profile: VisualProfile,
    moment: str,
    side_character: SideCharacter,
    budget: int = DEFAULT_PROMPT_BUDGET,
    reference: bool = True,
) -> str:
    """`reference`: the character sheet goes with the prompt as the model's reference image."""
    if budget < 80:
        raise ValueError(f"image prompt budget {budget} is too small (minimum 80 characters)")
    style_core = _sentence(f"{base_style.art_style}, {base_style.lighting}")
    style_detail = _sentence(
        f"{base_style.atmosphere}; colors: {base_style.color_scheme}; "
        f"composition: {base_style.composition_rules}"
    )
    side = ""
    if side_character.exists and visual_profile.side_character_prompt:
        side = _sentence(f"With {visual_profile.side_character_prompt}")
    moment_part = _Part(_sentence(moment), priority=5, min_chars=60)
    if reference:
        keep = f"{child_name} and the friend exactly as in the reference image."
        cast = [
            _Part(keep, priority=4, min_chars=len(keep)),
            _Part(
                f"{child_name}, {_sentence(visual_profile.character_prompt)}",
                priority=3,
                min_chars=60,
            ),
            moment_part,
            _Part(side, priority=0, min_chars=0),
        ]
    else:
        card = character_card(child_name, visual_profile, side_character)
        cast = [_Part(card, priority=4, min_chars=min(len(card), CARD_MIN_CHARS)), moment_part]
    parts = [
        _Part(style_core, priority=4, min_chars=40),
        _Part(style_detail, priority=1, min_chars=0),
        _Part(_sentence(f"In {setting}"), priority=2, min_chars=30),
        *cast,
    ]

    def total() -> int:
        present = [p.text for p in parts if p.text]
        return sum(len(t) for t in present) + max(len(present) - 1, 0)

    for part in sorted(parts, key=lambda p: p.priority):
        excess = total() - budget
        if excess <= 0:
            break
        target = max(len(part.text) - excess, part.min_chars)
        part.text = _shorten(part.text, target) if target > 0 else ""
    text = " ".join(p.text for p in parts if p.text)
    # Still over (tiny budgets): hard cut at a word boundary, the moment included.
    return text if len(text) <= budget else _shorten(text, budget)
