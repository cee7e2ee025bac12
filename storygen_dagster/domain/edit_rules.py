"""What a user may edit and how an edit is validated: through the same contracts as the AI's
output, with errors that name the field. Pure: storage/edits.py applies what passes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from storygen_dagster.domain.models import (
    BaseStyle,
    ChildProfile,
    LongText,
    Phrase,
    SideCharacter,
    StoryMeta,
    VisualProfile,
)

# Story-level JSON fields a user may edit, with the contract each must still satisfy.
STORY_FIELDS: dict[str, type[BaseModel]] = {
    "child_profile": ChildProfile,
    "side_character": SideCharacter,
    "story_meta": StoryMeta,
    "visual_profile": VisualProfile,
    "base_style": BaseStyle,
}
# The Dagster asset each stored field belongs to (the lineage a user edit shows up in).
FIELD_ASSETS = {
    "child_profile": "structured_story",
    "side_character": "structured_story",
    "story_meta": "structured_story",
    "title": "structured_story",
    "text": "structured_story",
    "moment": "scene_moments",
    "visual_profile": "visual_profile",
    "base_style": "base_style",
}
TEXT = TypeAdapter(LongText)
MOMENT = TypeAdapter(Phrase)


class EditError(ValueError):
    """An edit that cannot be applied; the message names the field. Nothing was written."""


def _messages(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors():
        name = ".".join([prefix, *(str(p) for p in err["loc"])])
        got = f" (got {err['input']!r})" if not isinstance(err.get("input"), dict) else ""
        parts.append(f"{name}: {err['msg']}{got}")
    return "; ".join(parts)


def _validated(model: type[BaseModel], value: Any, prefix: str) -> dict:
    try:
        return model.model_validate(value).model_dump(mode="json")
    except ValidationError as exc:
        raise EditError(_messages(exc, prefix)) from exc


def checked_text(adapter: TypeAdapter, value: str, name: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise EditError(_messages(exc, name)) from exc


def _set_path(value: dict, path: str, new: Any) -> None:
    """Set a dotted path below a story field (`child_profile.favorites.animal`)."""
    node = value
    *parents, leaf = path.split(".")[1:]
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            inside = ".".join(path.split(".")[: i + 2])
            raise EditError(f"{path}: {inside} is not an object; set it whole instead")
        node = child
    node[leaf] = new


def story_values(
    row: Mapping[str, Any], story_id: str, title: str | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The new value of every story-level field the edit touches, validated."""
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for path, value in fields.items():
        top = path.split(".")[0]
        if top not in STORY_FIELDS:
            raise EditError(f"{path}: unknown field; editable: {', '.join(STORY_FIELDS)}, title")
        if path == "story_meta.scene_count":
            raise EditError(f"{path}: the scene count follows the scenes; regenerate to change it")
        grouped.setdefault(top, []).append((path, value))
    new: dict[str, Any] = {}
    for top, sets in grouped.items():
        if row[top] is None:
            raise EditError(f"{top}: story {story_id!r} has no {top} yet; generate it first")
        value = copy.deepcopy(row[top])
        for path, v in sets:
            if path == top:
                if not isinstance(v, dict):
                    raise EditError(f"{path}: set a whole field as a JSON object")
                value = v
            else:
                _set_path(value, path, v)
        new[top] = _validated(STORY_FIELDS[top], value, top)
    if "story_meta" in new or title is not None:
        if row["story_meta"] is None:
            raise EditError(f"title: story {story_id!r} has no story yet; generate it first")
        meta = new.get("story_meta", row["story_meta"])
        if meta["scene_count"] != row["story_meta"]["scene_count"]:
            raise EditError("story_meta.scene_count: follows the scenes; regenerate to change it")
        # stories.title and story_meta.story_title are one value.
        wanted = title if title is not None else row["title"]
        new["story_meta"] = _validated(StoryMeta, {**meta, "story_title": wanted}, "story_meta")
        new["title"] = new["story_meta"]["story_title"]
    return new


def normalise(
    title: str | None, fields: Mapping[str, Any] | None
) -> tuple[str | None, dict[str, Any]]:
    fields = dict(fields or {})
    for alias in ("title", "story_meta.story_title"):
        if alias in fields:
            value = fields.pop(alias)
            if title is not None and value != title:
                raise EditError(f"{alias}: given twice with different values")
            title = value
    if title is not None:
        if not isinstance(title, str) or not title.strip():
            raise EditError("title: must be non-empty text")
    return title, fields
