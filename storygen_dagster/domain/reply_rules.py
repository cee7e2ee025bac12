"""What a request requires of a model's reply, in two forms: pins that go into the JSON schema
sent to the model (a constrained decoder follows the schema, not the prompt) and semantic
checks run on the parsed reply inside the validate -> repair loop. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from storygen_dagster.domain.models import StoryRequest, StructuredStory

# A scene shorter than this is not "2-4 short sentences": the model wrote a placeholder.
MIN_SCENE_TEXT_CHARS = 20


@dataclass(frozen=True)
class ReplyRules:
    """`values`: dotted path -> the only acceptable value (an `enum` of one in the schema).
    `lengths`: dotted path of an array -> its exact length (minItems = maxItems).
    `counts`: dotted path of a count field -> the array it counts (normalization makes the
    count follow the array; when the array's length is pinned, the schema pins the count).
    `check`: further problems of a parsed reply, each a sentence the model can act on."""

    values: dict[str, Any] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    counts: dict[str, str] = field(default_factory=dict)
    check: Callable[[Any], list[str]] | None = None

    def schema_pins(self) -> tuple[dict[str, Any], dict[str, int]]:
        """(path -> the one value, array path -> exact length) to write into the schema."""
        values = dict(self.values)
        for count_path, array_path in self.counts.items():
            if array_path in self.lengths:
                values[count_path] = self.lengths[array_path]
        return values, dict(self.lengths)

    def length_problems(self, value: BaseModel | dict) -> list[str]:
        """Arrays of the wrong length (also on a reply that does not validate yet, so the model
        hears "you wrote 2 scenes; the request asks for exactly 4", not a schema error)."""
        found = []
        for path, length in self.lengths.items():
            got = _get(value, path)
            if isinstance(got, list) and len(got) != length:
                found.append(_count_message(path, len(got), length))
        return found

    def problems(self, value: BaseModel) -> list[str]:
        found = self.length_problems(value)
        for path, wanted in self.values.items():
            got = _get(value, path)
            if not _same(got, wanted):
                found.append(f"{path} is {got!r}; the request asks for {wanted!r}")
        if self.check is not None:
            found += self.check(value)
        return found


NO_RULES = ReplyRules()


def _get(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def _same(got: Any, wanted: Any) -> bool:
    if isinstance(got, str) and isinstance(wanted, str):
        return got.strip().casefold() == wanted.strip().casefold()
    return got == wanted


def _count_message(path: str, got: int, wanted: int) -> str:
    if path == "scenes":
        return f"you wrote {got} scenes; the request asks for exactly {wanted}"
    return f"{path} has {got} entries; the request asks for exactly {wanted}"


def _story_problems(story: StructuredStory) -> list[str]:
    return [
        f"scene {s.scene_number}'s text is {len(s.text)} characters; write 2-4 short sentences"
        for s in story.scenes
        if len(s.text) < MIN_SCENE_TEXT_CHARS
    ]


def structured_story_rules(request: StoryRequest) -> ReplyRules:
    """Every scalar the request fixes, pinned where the story carries it."""
    direct = {
        "child_profile.name": request.child_name,
        "child_profile.age": request.age,
        "child_profile.gender": request.gender,
        "story_meta.value_to_teach": request.value_to_teach,
        "story_meta.tone": request.tone,
    }
    if request.favorites is not None:
        for name in ("animal", "color", "toy"):
            direct[f"child_profile.favorites.{name}"] = getattr(request.favorites, name)
    if request.side_character:
        direct["side_character.exists"] = True
    values = {path: v for path, v in direct.items() if v is not None}
    lengths = {"scenes": request.scene_count} if request.scene_count else {}
    return ReplyRules(
        values=values,
        lengths=lengths,
        counts={"story_meta.scene_count": "scenes"},
        check=_story_problems,
    )


def scene_moment_rules(scene_number: int) -> ReplyRules:
    return ReplyRules(values={"scene_number": scene_number})
