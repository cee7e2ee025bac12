"""The story_requests queue: insert, read pending, and the status lifecycle
pending → queued → running → succeeded | failed | rejected."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from storygen_dagster.storage.dblog import db_op
from storygen_dagster.storage.tables import story_requests

NOW = sa.func.now()
# A launch that did not count (it never started, or the daily budget stopped it) gives its
# attempt back.
ATTEMPT_GIVEN_BACK = sa.func.greatest(story_requests.c.attempts - 1, 0)
RUN_KEY_PREFIX = "runkey:"  # run_id holds the run key until the run's id is known


@dataclass(frozen=True)
class PendingRequest:
    id: int
    story_id: str | None
    payload: dict
    attempts: int
    status: str


def enqueue(
    engine: sa.Engine, payload: dict, *, story_id: str | None, requested_by: str, priority: int = 0
) -> int:
    with db_op("enqueue_request", story_id=story_id) as op, engine.begin() as conn:
        new_id: int = conn.execute(
            story_requests.insert()
            .values(
                story_id=story_id, payload=payload, requested_by=requested_by, priority=priority
            )
            .returning(story_requests.c.id)
        ).scalar_one()
        op.rows = 1
    return new_id


def read_requests(
    engine: sa.Engine, *, statuses: Iterable[str], limit: int, max_attempts: int | None = None
) -> list[PendingRequest]:
    """Highest priority first, then oldest. Failed rows only while attempts remain."""
    query = (
        sa.select(
            story_requests.c.id,
            story_requests.c.story_id,
            story_requests.c.payload,
            story_requests.c.attempts,
            story_requests.c.status,
        )
        .where(story_requests.c.status.in_(list(statuses)))
        .order_by(story_requests.c.priority.desc(), story_requests.c.id)
        .limit(limit)
    )
    if max_attempts is not None:
        query = query.where(
            sa.or_(story_requests.c.status != "failed", story_requests.c.attempts < max_attempts)
        )
    with db_op("read_requests") as op, engine.connect() as conn:
        rows: Sequence[tuple[int, str | None, dict, int, str]] = conn.execute(query).all()
        op.rows = len(rows)
    return [PendingRequest(*row) for row in rows]


def reject(engine: sa.Engine, request_id: int, story_id: str | None, error: str) -> None:
    reject_many(engine, [(request_id, story_id, error)])


def reject_many(engine: sa.Engine, rejects: Sequence[tuple[int, str | None, str]]) -> int:
    """(request id, story id, error): rejected with the error, in one transaction; only rows
    still pending move."""
    if not rejects:
        return 0
    story_id = rejects[0][1] if len(rejects) == 1 else None
    with db_op("reject_request", story_id=story_id) as op, engine.begin() as conn:
        for request_id, _, error in rejects:
            op.rows += conn.execute(
                story_requests.update()
                .where(story_requests.c.id == request_id, story_requests.c.status == "pending")
                .values(status="rejected", error=error[:4000], updated_at=NOW)
            ).rowcount
    return op.rows


def mark_queued(
    engine: sa.Engine,
    launches: list[tuple[int, str, str]],
    from_statuses: tuple[str, ...] = ("pending",),
) -> int:
    """(request id, story id, run key): queued, attempts + 1, run_id = the run key until the
    run exists. Only rows still in `from_statuses` move, so two evaluations cannot both win."""
    if not launches:
        return 0
    stmt = (
        story_requests.update()
        .where(
            story_requests.c.id == sa.bindparam("request_id_"),
            # (not in_(): an expanding parameter cannot be used with executemany)
            sa.or_(*(story_requests.c.status == status for status in from_statuses)),
        )
        .values(
            status="queued",
            story_id=sa.bindparam("story_id_"),
            error=None,
            attempts=story_requests.c.attempts + 1,
            run_id=sa.bindparam("run_id_"),
            updated_at=NOW,
        )
    )
    params = [
        {"request_id_": rid, "story_id_": sid, "run_id_": RUN_KEY_PREFIX + key}
        for rid, sid, key in launches
    ]
    with db_op("queue_requests") as op, engine.begin() as conn:
        op.rows = conn.execute(stmt, params).rowcount  # one executemany, pipelined by psycopg
    return op.rows


def unresolved_launches(engine: sa.Engine) -> list[tuple[int, str, str, dt.datetime]]:
    """Queued rows whose run id is not known yet: (id, story id, run key, updated_at)."""
    with db_op("unresolved_launches") as op, engine.connect() as conn:
        rows: Sequence[tuple[int, str, str, dt.datetime]] = conn.execute(
            sa.select(
                story_requests.c.id,
                story_requests.c.story_id,
                story_requests.c.run_id,
                story_requests.c.updated_at,
            ).where(
                story_requests.c.status == "queued",
                story_requests.c.run_id.startswith(RUN_KEY_PREFIX),
            )
        ).all()
        op.rows = len(rows)
    return [(i, sid, run_id[len(RUN_KEY_PREFIX) :], at) for i, sid, run_id, at in rows]


def resolve_launch(engine: sa.Engine, request_id: int, run_id: str | None) -> None:
    """The run exists: record its id. It never launched (a crash after the rows were marked):
    back to pending, attempts restored, so the next tick launches it again."""
    with db_op("resolve_launch") as op, engine.begin() as conn:
        values: dict[str, Any] = (
            {"run_id": run_id}
            if run_id
            else {
                "status": "pending",
                "run_id": None,
                "attempts": ATTEMPT_GIVEN_BACK,
            }
        )
        op.rows = conn.execute(
            story_requests.update()
            .where(story_requests.c.id == request_id, story_requests.c.status == "queued")
            .values(**values, updated_at=NOW)
        ).rowcount


def launch_ids(run_id: str, run_key: str | None) -> list[str]:
    """What a row's run_id holds for this run: its id, or its run key until the id is known."""
    return [run_id] + ([RUN_KEY_PREFIX + run_key] if run_key else [])


def request_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(story_requests).order_by(story_requests.c.id)
            ).mappings()
        ]
