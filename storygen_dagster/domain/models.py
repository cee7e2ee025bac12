"""Pydantic contracts: the request and every artifact of the pipeline (field names from the
original service)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from storygen_dagster.domain.ids import validate_story_id

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Tags = Annotated[list[ShortText], Field(max_length=8)]

MIN_AGE, MAX_AGE = 3, 6
# C0 and C1 control characters but tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MIN_SCENES, MAX_SCENES = 3, 5


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Favorites(Contract):
    animal: ShortText
    color: ShortText
    toy: ShortText


class RequestFavorites(Contract):
    animal: ShortText | None = None
    color: ShortText | None = None
    toy: ShortText | None = None


class StoryRequest(Contract):
    """What a user asks for: one flat object, every field optional, unknown fields rejected."""

    story_id: str | None = None
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    child_name: ShortText | None = None
    age: Annotated[int, Field(ge=MIN_AGE, le=MAX_AGE, strict=True)] | None = None
    gender: ShortText | None = None
    personality: Tags | None = None
    fears: Tags | None = None
    favorites: RequestFavorites | None = None
    value_to_teach: ShortText | None = None
    setting: Phrase | None = None
    tone: ShortText | None = None
    scene_count: Annotated[int, Field(ge=MIN_SCENES, le=MAX_SCENES, strict=True)] | None = None
    side_character: Phrase | None = None
    # Hold this story for a person's approval before any picture (STORYGEN_REVIEW=story: all).
    review: Annotated[bool, Field(strict=True)] | None = None

    @field_validator("story_id")
    @classmethod
    def _safe_story_id(cls, value: str | None) -> str | None:
        return None if value is None else validate_story_id(value)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        """A NUL failed the request's insert with a traceback (Postgres text cannot hold it);
        an escape sequence in a name reached every terminal that prints the title. Line
        breaks and tabs are text."""
        if isinstance(value, BaseModel):
            texts = list(value.model_dump().values())
        else:
            texts = value if isinstance(value, list) else [value]
        for text in texts:
            found = _CONTROL.search(text) if isinstance(text, str) else None
            if found:
                raise ValueError(f"control character U+{ord(found.group()):04X} in the text")
        return value

    def content(self) -> dict:
        """The request without its id or review flag: what the story is generated from."""
        return self.model_dump(mode="json", exclude={"story_id", "review"}, exclude_none=True)


class Clothing(Contract):
    top: ShortText
    bottom: ShortText
    shoes: ShortText


class PhysicalAppearance(Contract):
    height: ShortText
    build: ShortText
    skin_tone: ShortText
    hair_color: ShortText
    hair_style: ShortText
    eye_color: ShortText
    accessories: Annotated[list[ShortText], Field(max_length=6)] = []
    clothing: Clothing


class ChildProfile(Contract):
    name: ShortText
    age: Annotated[int, Field(ge=MIN_AGE, le=MAX_AGE)]
    gender: ShortText
    personality: Annotated[list[ShortText], Field(min_length=1, max_length=8)]
    fears: Annotated[list[ShortText], Field(max_length=8)]
    favorites: Favorites
    physical_appearance: PhysicalAppearance


class SideCharacter(Contract):
    exists: bool
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""

    @model_validator(mode="after")
    def _described_if_exists(self) -> SideCharacter:
        if self.exists and not self.description:
            raise ValueError("side_character.description is required when exists is true")
        return self


class StoryMeta(Contract):
    value_to_teach: ShortText
    setting_description: Phrase
    scene_count: Annotated[int, Field(ge=MIN_SCENES, le=MAX_SCENES)]
    tone: ShortText
    story_title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
    ]


class Scene(Contract):
    scene_number: Annotated[int, Field(ge=1, le=MAX_SCENES)]
    text: LongText


class StructuredStory(Contract):
    child_profile: ChildProfile
    side_character: SideCharacter
    story_meta: StoryMeta
    scenes: Annotated[list[Scene], Field(min_length=MIN_SCENES, max_length=MAX_SCENES)]

    @model_validator(mode="after")
    def _scenes_match_meta(self) -> StructuredStory:
        if len(self.scenes) != self.story_meta.scene_count:
            raise ValueError(
                f"scenes has {len(self.scenes)} entries but story_meta.scene_count is "
                f"{self.story_meta.scene_count}"
            )
        numbers = [s.scene_number for s in self.scenes]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(
                f"scene_number values must be 1..{len(numbers)} in order, got {numbers}"
            )
        return self


class VisualProfile(Contract):
    character_prompt: Phrase
    side_character_prompt: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=300)
    ] = ""


class BaseStyle(Contract):
    art_style: Phrase
    lighting: Phrase
    atmosphere: Phrase
    color_scheme: Phrase
    composition_rules: Phrase


class SceneMoment(Contract):
    scene_number: Annotated[int, Field(ge=1, le=MAX_SCENES)]
    moment: Phrase


class Provenance(BaseModel):
    """Who or what produced a value: the facts lineage and the audit log are built from."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["ai", "user"] = "ai"
    provider: str
    model: str
    prompt_name: str | None = None
    prompt_version: str | None = None
    prompt_sha256: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 1
    cached: bool = False
    # A model's reply as it came: repair calls made, unknown keys dropped, other normalizations.
    repairs: int = 0
    dropped_keys: int = 0
    reply_fixes: int = 0
    # sha256 of the upstream values this value was made from (domain/fingerprints.py).
    input_fingerprint: str | None = None
    # Pictures: the story's locked seed, and how the character sheet went with the request.
    seed: int | None = None
    reference: str | None = None
