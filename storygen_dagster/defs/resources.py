"""Every resource, built once: the database and object store, their IO managers, and the
providers the settings name (defs/providers.py)."""

from __future__ import annotations

import dagster as dg

from storygen_dagster.defs.io_managers import io_managers
from storygen_dagster.defs.providers import (
    ImageServiceResource,
    ModerationResource,
    StoryLLMResource,
    provider_resources,
)
from storygen_dagster.defs.reviewer import PictureReviewerResource, reviewer_resource
from storygen_dagster.defs.stores import ObjectStoreResource, StoryDatabase

# The stores live in stores.py (the IO managers are built on them), the providers in
# providers.py; named here for callers.
__all__ = [
    "ImageServiceResource",
    "ModerationResource",
    "ObjectStoreResource",
    "PictureReviewerResource",
    "StoryDatabase",
    "StoryLLMResource",
    "default_resources",
    "with_io_managers",
]


def with_io_managers(resources: dict) -> dict:
    """The IO managers built on this dict's own `db` and `objects` (so they read and write the
    same database and object store as the engine), and the picture reviewer the settings
    name, unless it names them already."""
    defaults: dict = {**io_managers(resources["db"], resources["objects"])}
    if "reviewer" not in resources:
        defaults["reviewer"] = reviewer_resource()
    return {**defaults, **resources}


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return with_io_managers(
        {
            "db": StoryDatabase(),
            "objects": ObjectStoreResource(),
            **provider_resources(),
        }
    )
