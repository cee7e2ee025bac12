"""The shared "paused until" of each provider limit in Postgres (`provider_pauses`): a 429 with
Retry-After moves it forward (never back), and every worker reads it before a call."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from storygen_dagster.storage.db import get_engine
from storygen_dagster.storage.tables import provider_pauses


class PostgresPauses:
    def __init__(self, database_url: str):
        self.engine = get_engine(database_url)

    def paused_until(self, name: str) -> float:
        with self.engine.connect() as conn:
            until = conn.execute(
                sa.select(sa.func.extract("epoch", provider_pauses.c.until)).where(
                    provider_pauses.c.name == name
                )
            ).scalar()
        return float(until or 0.0)

    def pause(self, name: str, seconds: float) -> None:
        until = sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
        stmt = insert(provider_pauses).values(name=name, until=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[provider_pauses.c.name],
            set_={"until": sa.func.greatest(provider_pauses.c.until, stmt.excluded.until)},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
