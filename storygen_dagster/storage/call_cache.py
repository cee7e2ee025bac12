"""The provider call cache and ledger (`provider_calls`): look a request up before paying for it,
record every real HTTP call after it (tokens, cost, attempts, status). One row per distinct
request: a `--fresh` call of the same request replaces the row (the latest call wins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.outages import retry_once_on_disconnect
from storygen_dagster.storage.tables import provider_calls

if TYPE_CHECKING:
    import pandas as pd


def cache_key(provider: str, model: str, endpoint: str, body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of the call's identity."""
    return content_hash({"provider": provider, "model": model, "endpoint": endpoint, "body": body})


@dataclass
class CallRecord:
    cache_key: str
    provider: str
    model: str
    endpoint: str
    request: dict[str, Any]
    status: str
    story_id: str | None = None
    asset: str | None = None
    scene_number: int | None = None
    response: dict[str, Any] | None = None
    http_status: int | None = None
    error: str | None = None
    attempts: int = 0
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        values = {k: v for k, v in self.__dict__.items() if k != "extra"}
        values["error"] = (self.error or None) and self.error[:4000]
        return values


def lookup(engine: sa.Engine, key: str) -> CallRecord | None:
    """The cached successful call for `key`, if any (failed calls are never reused)."""
    with db_op("call_cache_lookup") as op, engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(provider_calls).where(
                    provider_calls.c.cache_key == key, provider_calls.c.status == "succeeded"
                )
            )
            .mappings()
            .first()
        )
        op.rows = int(row is not None)
    if row is None:
        return None
    values = {k: row[k] for k in CallRecord.__dataclass_fields__ if k in row}
    values["cost_usd"] = float(values["cost_usd"] or 0)
    return CallRecord(**values)


def record(engine: sa.Engine, rec: CallRecord) -> None:
    """Upsert by cache_key. A failure never replaces an earlier success of the same request:
    the good cached answer stays usable. The call is paid already: a write whose connection
    is lost is tried once more, after the database is back, so a re-run never pays again."""
    retry_once_on_disconnect(_record, engine, rec)


def _record(engine: sa.Engine, rec: CallRecord) -> None:
    values = rec.row()
    stmt = insert(provider_calls).values(**values)
    update: dict[str, Any] = {k: stmt.excluded[k] for k in values if k != "cache_key"}
    update["created_at"] = sa.func.now()
    stmt = stmt.on_conflict_do_update(
        index_elements=[provider_calls.c.cache_key],
        set_=update,
        where=sa.or_(provider_calls.c.status != "succeeded", stmt.excluded.status == "succeeded"),
    )
    with db_op("record_provider_call", story_id=rec.story_id, scene_id=rec.scene_number) as op:
        with engine.begin() as conn:
            op.rows = conn.execute(stmt).rowcount


def mark_succeeded(engine: sa.Engine, key: str) -> None:
    """An invalid reply whose repair succeeded becomes reusable (a re-run replays the pair)."""
    retry_once_on_disconnect(_mark_succeeded, engine, key)


def _mark_succeeded(engine: sa.Engine, key: str) -> None:
    with db_op("mark_provider_call_succeeded") as op, engine.begin() as conn:
        op.rows = conn.execute(
            provider_calls.update()
            .where(provider_calls.c.cache_key == key, provider_calls.c.response.is_not(None))
            .values(status="succeeded")
        ).rowcount


def story_spend(engine: sa.Engine, story_id: str) -> float:
    """USD recorded for a story's calls (failed calls that were billed included)."""
    with db_op("story_spend", story_id=story_id) as op, engine.connect() as conn:
        total: Decimal = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(provider_calls.c.cost_usd), 0)).where(
                provider_calls.c.story_id == story_id
            )
        ).scalar_one()
        op.rows = 1
    return float(total)


def ledger(engine: sa.Engine, story_id: str | None = None) -> pd.DataFrame:
    import pandas as pd

    cols = [c for c in provider_calls.c if c.name not in ("request", "response", "cache_key")]
    query = sa.select(*cols).order_by(provider_calls.c.id)
    if story_id is not None:
        query = query.where(provider_calls.c.story_id == story_id)
    with db_op("ledger", story_id=story_id) as op, engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        op.rows = len(rows)
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in cols])
