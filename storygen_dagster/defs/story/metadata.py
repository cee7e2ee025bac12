"""The metadata and tags of one story's materialization of one asset: the engine's facts, the
same provenance facts the Postgres provenance column holds, and the code and data versions in
the tags Dagster reads (`dagster/code_version`, `dagster/data_version`)."""

from typing import Any

import dagster as dg

from storygen_dagster.domain.models import Provenance
from storygen_dagster.engine.outcomes import Built, Markdown, Uri
from storygen_dagster.engine.vocabulary import CODE_VERSIONS

CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_DATA_VERSION_PREFIX = "dagster/input_data_version"
INPUT_EVENT_POINTER_PREFIX = "dagster/input_event_pointer"


def fact_value(value: Any) -> dg.MetadataValue:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(str(value))
    if isinstance(value, Uri):
        return dg.MetadataValue.path(str(value))
    if isinstance(value, bool):  # before int: a bool is an int
        return dg.MetadataValue.bool(value)
    if isinstance(value, dict | list):
        return dg.MetadataValue.json(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return dg.MetadataValue.text(str(value))


def provenance_metadata(
    provs: list[Provenance], by: str, fingerprint: str | dict | None
) -> dict[str, dg.MetadataValue]:
    """The facts of one story's materialization of one asset (summed over its calls)."""
    first = provs[0]
    meta: dict[str, dg.MetadataValue] = {
        "source": dg.MetadataValue.text(first.source),
        "updated_by": dg.MetadataValue.text(by),
        "provider": dg.MetadataValue.text(first.provider),
        "model": dg.MetadataValue.text(first.model),
        "prompt_name": dg.MetadataValue.text(first.prompt_name or ""),
        "prompt_version": dg.MetadataValue.text(first.prompt_version or ""),
        "prompt_sha256": dg.MetadataValue.text(first.prompt_sha256 or ""),
        "calls": dg.MetadataValue.int(len(provs)),
        "latency_ms_total": dg.MetadataValue.float(round(sum(p.latency_ms for p in provs), 2)),
        "prompt_tokens": dg.MetadataValue.int(sum(p.prompt_tokens for p in provs)),
        "completion_tokens": dg.MetadataValue.int(sum(p.completion_tokens for p in provs)),
        "cost_usd": dg.MetadataValue.float(round(sum(p.cost_usd for p in provs), 6)),
        "attempts": dg.MetadataValue.int(sum(p.attempts for p in provs)),
        "cached_calls": dg.MetadataValue.int(sum(p.cached for p in provs)),
        # How far the model's replies were from the contract (providers/lenient.py).
        "repairs": dg.MetadataValue.int(sum(p.repairs for p in provs)),
        "dropped_keys": dg.MetadataValue.int(sum(p.dropped_keys for p in provs)),
        "reply_fixes": dg.MetadataValue.int(sum(p.reply_fixes for p in provs)),
    }
    if isinstance(fingerprint, dict):
        meta["input_fingerprints"] = dg.MetadataValue.json(fingerprint)
    elif fingerprint:
        meta["input_fingerprint"] = dg.MetadataValue.text(fingerprint)
    return meta


def materialization(outcome: Built, pointers: dict[str, int]) -> dg.AssetMaterialization:
    """`pointers`: the storage id of each input's materialization the value was built from."""
    return dg.AssetMaterialization(
        asset_key=dg.AssetKey(outcome.asset),
        partition=outcome.story_id,
        metadata={
            **{k: fact_value(v) for k, v in outcome.facts.items()},
            **provenance_metadata(outcome.provenance, outcome.by, outcome.fingerprint),
        },
        tags={
            CODE_VERSION_TAG: CODE_VERSIONS[outcome.asset],
            DATA_VERSION_TAG: outcome.data_version,
            # What the value was built from, so the UI can say which stories are stale and
            # why (without these, every downstream value shows "has a new dependency").
            **{f"{INPUT_DATA_VERSION_PREFIX}/{k}": v for k, v in outcome.inputs.items()},
            **{f"{INPUT_EVENT_POINTER_PREFIX}/{k}": str(v) for k, v in pointers.items()},
        },
    )
