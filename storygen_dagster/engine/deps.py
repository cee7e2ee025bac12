"""What the engine needs (`StoryDeps`, built once per run) and what a run asks of it
(`RunOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from storygen_dagster.domain.printing import PrintSettings
from storygen_dagster.providers.base import ImageService, StoryLLM
from storygen_dagster.providers.moderation import Moderation
from storygen_dagster.providers.reviewer import PictureReviewer
from storygen_dagster.storage.objects import ObjectStore


@dataclass(frozen=True)
class StoryDeps:
    engine: sa.Engine
    store: ObjectStore
    llm: StoryLLM
    images: ImageService
    size: tuple[int, int]
    budget: int
    blocklist: tuple[str, ...]
    moderation: Moderation | None = None
    printing: PrintSettings = field(default_factory=PrintSettings)
    # Reviews every scene picture (issue 16; STORYGEN_VISION_MODEL); None: no review.
    reviewer: PictureReviewer | None = None
    max_redraws: int = 1  # STORYGEN_MAX_REDRAWS


@dataclass(frozen=True)
class RunOptions:
    by: str  # updated_by of every value written: "run:<id>"
    assets: frozenset[str]  # the selected assets (empty: checks executed alone)
    checks: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (asset, check)
    fresh: bool = False  # bypass the provider call cache
    stale_only: bool = False  # regenerate only values whose input fingerprints changed
    overwrite: bool = False  # AI values replace user edits
    review_all: bool = False  # STORYGEN_REVIEW=story: every story waits for approval
    new_seed: bool = False  # draw a new locked image seed for the story (`run --new-seed`)
