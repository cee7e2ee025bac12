"""The storybook: a self-standing HTML page (title, the cast page with the character sheet,
every scene's text and picture)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import jinja2

from storygen_dagster.domain.models import SideCharacter, StructuredStory


@dataclass(frozen=True)
class Page:
    scene_number: int
    text: str
    image_src: str  # relative to the book, so the folder reads offline as it is
    alt: str


@dataclass(frozen=True)
class CastPage:
    title: str  # "Meet Maya and Pip"
    image_src: str


_ARTICLES = ("a ", "an ", "the ")


def cast_title(child_name: str, side: SideCharacter) -> str:
    """'Meet Maya', 'Meet Maya and Pip' (a friend described as 'Pip, a brave mouse') or
    'Meet Maya and the wise old fox' (one described as 'a wise old fox')."""
    if not side.exists or not side.description.strip():
        return f"Meet {child_name}"
    friend = side.description.strip().split(",")[0].split(".")[0].strip()
    lowered = friend.lower()
    for article in _ARTICLES:
        if lowered.startswith(article):
            friend = "the " + friend[len(article) :]
            break
    return f"Meet {child_name} and {friend}"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("storygen_dagster.domain", "templates"),
        autoescape=True,  # story text comes from a model or a user: escape it
        undefined=jinja2.StrictUndefined,
    )


def render_book(
    story_id: str,
    story: StructuredStory,
    pages: list[Page],
    width: int,
    height: int,
    cast: CastPage | None = None,
    language: str = "en",
) -> str:
    numbers = [p.scene_number for p in pages]
    expected = [s.scene_number for s in story.scenes]
    if numbers != expected:
        raise ValueError(f"book pages {numbers} do not match the story's scenes {expected}")
    return (
        _environment()
        .get_template("book.html.j2")
        .render(
            story_id=story_id,
            title=story.story_meta.story_title,
            child_name=story.child_profile.name,
            age=story.child_profile.age,
            value_to_teach=story.story_meta.value_to_teach,
            pages=pages,
            cast=cast,
            width=width,
            height=height,
            language=language,
        )
    )
