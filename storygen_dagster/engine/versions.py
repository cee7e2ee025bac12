"""The data version of each story value: the sha256 of what is stored, computed the same way
whether the engine just built the value or reads it as an input (a downstream value records
the versions it was built from, so Dagster can tell which stories are stale)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import StructuredStory


def story_version(story: StructuredStory) -> str:
    return content_hash(story.model_dump(mode="json"))


def field_version(value: Mapping[str, Any]) -> str:
    return content_hash(dict(value))


def moments_version(rows: Iterable[Mapping[str, Any]]) -> str:
    return content_hash({str(int(r["scene_number"])): r["moment"] for r in rows})


def images_version(rows: Iterable[Mapping[str, Any]]) -> str:
    return content_hash({str(int(r["scene_number"])): r["image_sha256"] for r in rows})
