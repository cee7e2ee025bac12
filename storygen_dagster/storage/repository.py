"""The story tables' writes, by aggregate: storage/story_rows.py (stories), structured_rows.py
(the structured story: story values and scene texts together), scene_rows.py (scenes),
writes.py (what they share). This module names them in one place for callers."""

from storygen_dagster.storage.scene_rows import BULK_ROWS, upsert_scene_columns
from storygen_dagster.storage.story_rows import (
    mark_failed,
    register_request,
    register_requests,
    save_story_field,
    set_book,
    set_print_file,
)
from storygen_dagster.storage.structured_rows import save_structured_story
from storygen_dagster.storage.writes import NOW, StoryNotFound, jsonb_patch, user_owned

__all__ = [
    "BULK_ROWS",
    "NOW",
    "StoryNotFound",
    "jsonb_patch",
    "mark_failed",
    "register_request",
    "register_requests",
    "save_story_field",
    "save_structured_story",
    "set_book",
    "set_print_file",
    "upsert_scene_columns",
    "user_owned",
]
