"""The budget of the whole operation (STORYGEN_MAX_COST_PER_DAY_USD), checked atomically by
every worker before each paid call: under one Postgres advisory lock, today's spend in the
ledger (provider_calls, the source of truth) plus the holds of calls still in flight plus this
call's estimate must stay within the cap; the call then holds its estimate until the ledger
has its cost. A hold whose worker died expires after HOLD_TTL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import budget_holds, provider_calls

# How a refusal starts (providers/calls.py): a story stopped by it failed for the day, not for
# anything of its own, and its request keeps its attempts (storage/request_outcomes.py).
STOP_MARK = "daily budget reached"


def is_budget_stop(error: str | None) -> bool:
    return bool(error) and STOP_MARK in str(error)


# pg_advisory_xact_lock key of the daily budget ("sgbudget" as an integer).
LOCK_KEY = 0x7367627564676574
HOLD_TTL = dt.timedelta(hours=1)


def _today_utc():
    return sa.func.date_trunc("day", sa.func.timezone("UTC", sa.func.now()))


def spent_today(conn: sa.Connection) -> float:
    """USD in the ledger since 00:00 UTC today (ix_provider_calls_created_at)."""
    total: Decimal = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(provider_calls.c.cost_usd), 0)).where(
            provider_calls.c.created_at >= sa.func.timezone("UTC", _today_utc())
        )
    ).scalar_one()
    return float(total)


def hold(engine: sa.Engine, limit_usd: float, estimate_usd: float) -> tuple[int | None, float]:
    """Reserve `estimate_usd` of today's budget: (hold id, committed before it), or (None,
    committed) when the call would take the day over `limit_usd`."""
    with db_op("daily_budget_hold") as op, engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
        held: Decimal = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(budget_holds.c.usd), 0)).where(
                budget_holds.c.created_at > sa.func.now() - HOLD_TTL
            )
        ).scalar_one()
        committed = spent_today(conn) + float(held)
        op.rows = 1
        if committed + estimate_usd > limit_usd:
            return None, committed
        hold_id: int = conn.execute(
            budget_holds.insert().values(usd=estimate_usd).returning(budget_holds.c.id)
        ).scalar_one()
    return hold_id, committed


def release(engine: sa.Engine, hold_id: int) -> None:
    """The call's cost is in the ledger (or it was never paid): drop its hold."""
    with db_op("daily_budget_release") as op, engine.begin() as conn:
        op.rows = conn.execute(budget_holds.delete().where(budget_holds.c.id == hold_id)).rowcount
        conn.execute(
            budget_holds.delete().where(budget_holds.c.created_at < sa.func.now() - HOLD_TTL)
        )
