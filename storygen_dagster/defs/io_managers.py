"""The IO managers of the story assets: Postgres for the story and scene values, the object
store (a folder or s3://, through UPath) for images and books. Both are thin adapters over
storage/values.py, which reads and writes with the engine's own functions: one code path per
store.

The story step yields no Output (its specs are skippable, see story/assets.py), so Dagster never
calls handle_output for the six story assets: the engine stored each value before the step
reported it. What these give is load_input: `defs.load_asset_value(key, partition_key=sid)`,
and story assets as inputs of other assets. One story loads as its value, several (a range
run, `partition_key_range=`) as {story_id: value}; an input annotated as a dict is always one.
Input metadata: `with_bytes` (scene_images: a column `image_png` with the PNG bytes),
`as_uri` (storybook: the book's URI instead of its HTML).

handle_output writes what an asset returns (a value, or {story_id: value} for a range; None is
nothing to write) with the same repository and object-store writes, and reports the rows and
URIs as output metadata. Not UPathIOManager: its path per asset and partition cannot name our
content-addressed objects (images/<story>/<sha256>.png), whose index is the story tables."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from storygen_dagster.defs.stores import ObjectStoreResource, StoryDatabase
from storygen_dagster.domain.models import Provenance
from storygen_dagster.storage import values
from storygen_dagster.storage.objects import ObjectStore

POSTGRES_IO = "postgres_io_manager"
OBJECTS_IO = "objects_io_manager"


class _StoryValueIOManager(dg.ConfigurableIOManager):
    db: dg.ResourceDependency[StoryDatabase]

    def _assets(self) -> frozenset[str]:
        raise NotImplementedError

    def _store(self) -> ObjectStore | None:
        return None

    def _asset(self, context: dg.InputContext | dg.OutputContext) -> str:
        asset = context.asset_key.to_user_string()
        if asset not in self._assets():
            raise ValueError(f"{type(self).__name__} does not store {asset}")
        if not context.has_asset_partitions:
            raise ValueError(f"{asset} is one value per story: give a story id as partition key")
        return asset

    def load_input(self, context: dg.InputContext) -> Any:
        asset = self._asset(context)
        ids = list(context.asset_partition_keys)
        options = context.definition_metadata or {}
        found = values.read(
            self.db.engine(),
            self._store(),
            asset,
            ids,
            with_bytes=bool(options.get("with_bytes")),
            as_uri=bool(options.get("as_uri")),
        )
        if len(ids) == 1 and not _wants_dict(context):
            return found[ids[0]]
        return found

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return  # the asset stored its value itself (the story engine does)
        asset = self._asset(context)
        by_story = _by_story(asset, obj, list(context.asset_partition_keys))
        written = values.write(
            self.db.engine(),
            self._store(),
            asset,
            by_story,
            by=f"run:{context.run_id}",
            provenance=Provenance(provider="dagster", model=type(self).__name__),
        )
        metadata: dict[str, Any] = {"stories": len(by_story), "rows": written["rows"]}
        if written["uris"]:
            metadata["uri"] = dg.MetadataValue.path(written["uris"][0])
            metadata["objects"] = len(written["uris"])
        context.add_output_metadata(metadata)


class PostgresIOManager(_StoryValueIOManager):
    """structured_story, visual_profile, base_style, scene_moments and story_catalog: the story
    tables, read and written as the engine does."""

    def _assets(self) -> frozenset[str]:
        return values.DATABASE_ASSETS


class ObjectStoreIOManager(_StoryValueIOManager):
    """scene_images and storybook: the objects (local folder or s3://), found through the URIs
    the story tables keep."""

    objects: dg.ResourceDependency[ObjectStoreResource]

    def _assets(self) -> frozenset[str]:
        return values.OBJECT_ASSETS

    def _store(self) -> ObjectStore:
        return self.objects.store()


def io_managers(db: StoryDatabase, objects: ObjectStoreResource) -> dict[str, dg.IOManager]:
    """Both IO managers on the given stores (the same resources the engine writes with)."""
    return {
        POSTGRES_IO: PostgresIOManager(db=db),
        OBJECTS_IO: ObjectStoreIOManager(db=db, objects=objects),
    }


def _wants_dict(context: dg.InputContext) -> bool:
    try:
        typing_type = context.dagster_type.typing_type
    except dg.DagsterInvariantViolationError:  # a context built without a type (tests)
        return False
    return typing_type is dict or getattr(typing_type, "__origin__", None) in (dict, Mapping)


def _by_story(asset: str, obj: Any, ids: list[str]) -> dict[str, Any]:
    """{story_id: value} for the run's stories: a dict for a range, one value for one story,
    or one DataFrame with a story_id column."""
    import pandas as pd  # not imported before a run's first provider call

    if isinstance(obj, pd.DataFrame) and "story_id" in obj.columns and len(ids) > 1:
        obj = {sid: rows.drop(columns="story_id") for sid, rows in obj.groupby("story_id")}
    if not isinstance(obj, Mapping) or (len(ids) == 1 and set(obj) != set(ids)):
        if len(ids) > 1:
            raise TypeError(
                f"{asset} for {len(ids)} stories must be a {{story_id: value}} dict "
                f"(got {type(obj).__name__})"
            )
        return {ids[0]: obj}
    if set(obj) != set(ids):
        raise ValueError(
            f"{asset}: the value's stories {sorted(obj)} are not the run's stories {sorted(ids)}"
        )
    return dict(obj)
