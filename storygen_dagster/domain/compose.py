"""Full image prompt composition with a length budget.

The parts, in reading order: base style, setting, the child, the moment, the side character.
When the whole is over budget the least important parts give way first: the side character,
then the finer points of the style, then the setting, then the character description; the
moment (what the picture is of) is cut last.
"""

from dataclasses import dataclass

from storygen_dagster.domain.models import BaseStyle, SideCharacter, VisualProfile

DEFAULT_PROMPT_BUDGET = 900


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


def compose_image_prompt(
    *,
    base_style: BaseStyle,
    setting: str,
    child_name: str,
    visual_profile: VisualProfile,
    moment: str,
    side_character: SideCharacter,
    budget: int = DEFAULT_PROMPT_BUDGET,
) -> str:
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
    parts = [
        _Part(style_core, priority=4, min_chars=40),
        _Part(style_detail, priority=1, min_chars=0),
        _Part(_sentence(f"In {setting}"), priority=2, min_chars=30),
        _Part(
            f"{child_name}, {_sentence(visual_profile.character_prompt)}", priority=3, min_chars=60
        ),
        _Part(_sentence(moment), priority=5, min_chars=60),
        _Part(side, priority=0, min_chars=0),
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
