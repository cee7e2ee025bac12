"""The storybook: a self-standing HTML page (title, every scene's text and picture)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import jinja2

from storygen_dagster.domain.models import StructuredStory


@dataclass(frozen=True)
class Page:
    scene_number: int
    text: str
    image_src: str  # relative to the book, so the folder reads offline as it is
    alt: str


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("storygen_dagster.domain", "templates"),
        autoescape=True,  # story text comes from a model or a user: escape it
        undefined=jinja2.StrictUndefined,
    )


def render_book(
    story_id: str, story: StructuredStory, pages: list[Page], width: int, height: int
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
            width=width,
            height=height,
        )
    )
