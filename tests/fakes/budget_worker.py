"""One worker process paying for provider calls under STORYGEN_MAX_COST_PER_DAY_USD (the test
runs two at once): `python -m tests.fakes.budget_worker URL KEY CALLS USD`; prints one JSON
line {"paid": n, "refused": n, "reason": first refusal}."""

import asyncio
import json
import os
import sys

from storygen_dagster.providers.base import CallContext
from storygen_dagster.providers.calls import BudgetExceeded, ProviderCalls
from storygen_dagster.providers.factory import libpq_url
from storygen_dagster.providers.http import ProviderHttp
from storygen_dagster.settings import get_settings
from storygen_dagster.storage.db import get_engine, resolve_database_url


async def main(url: str, key: str, calls: int, usd: float) -> dict:
    settings = get_settings()
    engine = get_engine(resolve_database_url(settings))
    http = ProviderHttp(
        provider="moderation",
        base_url=url,
        api_key=key,
        rpm=100_000,
        read_timeout_s=30,
        settings=settings,
        limit_name="budget-test",
        database_url=libpq_url(engine),
    )
    provider = ProviderCalls(http, "budget-model", engine, settings)
    paid, refused, reason = 0, 0, None

    async def one(i: int) -> None:
        nonlocal paid, refused, reason
        ctx = CallContext(story_id=f"b{os.getpid()}-{i}", asset="structured_story", fresh=True)
        body = {"model": "m", "input": [f"{os.getpid()}-{i}"]}
        async with http.client() as client:
            try:
                out = await provider.fetch(ctx, client, "moderations", body, estimate_usd=usd)
            except BudgetExceeded as exc:
                refused += 1
                reason = reason or str(exc)
                return
            out.cost_usd = usd
            await provider.record(ctx, out, "moderations", body, status="succeeded")
            paid += 1

    await asyncio.gather(*(one(i) for i in range(calls)))
    return {"paid": paid, "refused": refused, "reason": reason}


if __name__ == "__main__":
    url, key, calls, usd = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    sys.stdout.write(json.dumps(asyncio.run(main(url, key, calls, usd))) + "\n")
