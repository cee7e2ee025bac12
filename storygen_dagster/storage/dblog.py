"""Every DB operation logs one structured line; every DB error logs the same context first."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("storygen.db")


class StorageError(RuntimeError):
    """A database operation failed; the message names the operation and the story/scene."""


@dataclass
class OpStats:
    rows: int = 0
    scene_id: object = None  # set inside the block when the rows' ids are known (RETURNING)


@contextmanager
def db_op(
    operation: str, *, story_id: str | None = None, scene_id: object = None
) -> Iterator[OpStats]:
    stats = OpStats()
    started = time.perf_counter()
    context = {"operation": operation, "story_id": story_id, "scene_id": scene_id}
    try:
        yield stats
    except SQLAlchemyError as exc:
        ms = round((time.perf_counter() - started) * 1000, 2)
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.error(
            "db error: %s story_id=%s scene_id=%s: %s",
            operation,
            story_id,
            scene_id,
            detail,
            extra={**context, "rows": stats.rows, "ms": ms, "error": detail},
        )
        raise StorageError(
            f"{operation} failed for story_id={story_id} scene_id={scene_id}: {detail}"
        ) from exc
    ms = round((time.perf_counter() - started) * 1000, 2)
    if stats.scene_id is not None:
        scene_id = context["scene_id"] = stats.scene_id
    log.info(
        "db %s story_id=%s scene_id=%s rows=%s ms=%s",
        operation,
        story_id,
        scene_id,
        stats.rows,
        ms,
        extra={**context, "rows": stats.rows, "ms": ms},
    )
