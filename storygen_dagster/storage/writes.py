"""What every write of the story tables shares: the not-found error, JSONB patches, who owns a
field (a user edit is kept by AI writes), and the log line for kept edits."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.plan import user_owned

__all__ = ["user_owned"]  # re-exported: the writes decide with the plan's rule

NOW = sa.func.now()
log = logging.getLogger("storygen.lineage")


class StoryNotFound(LookupError):
    pass


def run_id_of(by: str) -> str | None:
    """Assets write by='run:<run_id>'; anything else (a user name) has no run."""
    return by.removeprefix("run:") if by.startswith("run:") else None


def jsonb_patch(column: sa.Column, patch: Mapping[str, Any]) -> sa.ColumnElement:
    """column = column || patch (JSONB): keys in the patch win, the others stay."""
    return column.op("||")(sa.cast(dict(patch), column.type))


def prov_patch(column: sa.Column, asset: str, prov: Provenance) -> sa.ColumnElement:
    """provenance = provenance || {asset: {...}}: one entry per asset, the latest wins."""
    return jsonb_patch(column, {asset: prov.model_dump()})


def fingerprint_entry(asset: str, fingerprint: str | None) -> dict[str, str]:
    return {asset: fingerprint} if fingerprint else {}


def log_kept(story_id: str, asset: str, kept: Iterable[str]) -> None:
    kept = sorted(kept)
    if kept:
        log.info(
            "kept user edits: story_id=%s asset=%s fields=%s",
            story_id,
            asset,
            ",".join(kept),
            extra={"story_id": story_id, "asset": asset, "operation": "keep_user_edits"},
        )
