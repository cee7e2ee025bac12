from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator


class StorygenTranslator(DagsterDbtTranslator):
    """dbt sources that are story tables map onto the story assets (meta.dagster.asset_key),
    so story assets → dbt models is one lineage graph; models sit in the `analytics` group."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("model."):
            spec = spec.replace_attributes(group_name="analytics")
        return spec
