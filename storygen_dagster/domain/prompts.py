"""Versioned prompt templates (Jinja2). A template's version is part of every call's provenance:
bump it when the wording changes so stories built with the old prompt can be found."""

from dataclasses import dataclass
from functools import cache

import jinja2

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import MAX_SCENES, MIN_SCENES

PROMPT_VERSIONS: dict[str, str] = {
    "structured_story": "v1",
    # The structured story again after a reviewer rejected it, with their note as guidance.
    "structured_story_revision": "v1",
    "visual_profile": "v1",
    "base_style": "v1",
    "scene_moment": "v1",
    # A scene picture judged by a vision model (issue 16).
    "picture_review": "v1",
}


@dataclass(frozen=True)
class RenderedPrompt:
    name: str
    version: str
    text: str

    @property
    def sha256(self) -> str:
        return content_hash(self.text)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("storygen_dagster.domain", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,  # prompts are plain text, never HTML
    )


def render_prompt(name: str, **context: object) -> RenderedPrompt:
    if name not in PROMPT_VERSIONS:
        raise KeyError(f"unknown prompt template {name!r}; known: {sorted(PROMPT_VERSIONS)}")
    version = PROMPT_VERSIONS[name]
    template = _environment().get_template(f"{name}.{version}.j2")
    text = template.render(min_scenes=MIN_SCENES, max_scenes=MAX_SCENES, **context)
    return RenderedPrompt(name=name, version=version, text=text.strip())
