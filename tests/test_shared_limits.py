"""Provider limits shared by every process: worker processes sharing one requests-per-minute
limit against a fake provider that enforces it, and a 429's Retry-After pausing every
worker, through Postgres (the default) and Redis."""

import asyncio
import json
import time

import pytest
import redis
import sqlalchemy as sa

from bench.shared_limits import measure
from storygen_dagster.providers import shared_limits
from storygen_dagster.providers.base import ProviderError
from storygen_dagster.providers.factory import libpq_url
from storygen_dagster.providers.http import ProviderHttp
from storygen_dagster.providers.shared_limits import (
    MAX_RETAKES,
    STALE_S,
    close_shared_limits,
    shared_rates,
)
from storygen_dagster.settings import Settings
from tests.fakes.provider_server import FakeProvider

pytest_plugins = ["tests.fakes.fixtures"]  # fake

REDIS = "redis://127.0.0.1:6379/12"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.timeout(300)
def test_three_workers_share_120_rpm_with_no_429_and_at_least_90_percent(database_url):
    # 120 requests per minute, counted by the fake and by our limiter over 20 s windows (40
    # per 20 s: the same rate, a shorter test); 3 processes of 8 calls in flight each could
    # send ~120 per second without the limit.
    m = measure(3, 45, 120, 20, latency_s=0.2, concurrency=8, database_url=database_url)
    assert m["exit_codes"] == [0, 0, 0], m
    assert m["rejected_429"] == 0, m
    assert m["share_of_limit"] >= 0.9, m
    assert sum(m["per_worker_ok"]) == m["admitted"] and all(m["per_worker_ok"]), m


def _client(fake: FakeProvider, settings: Settings, url: str, name: str) -> ProviderHttp:
    return ProviderHttp(
        provider="moderation",
        base_url=fake.url,
        api_key=fake.api_key,
        rpm=600,
        read_timeout_s=10,
        settings=settings,
        limit_name=name,
        database_url=url,
    )


@pytest.mark.parametrize("store", ["postgres", "redis"])
def test_a_429_with_retry_after_pauses_every_worker(store, engine, fake, monkeypatch):
    if store == "redis":
        if not _redis_up():
            pytest.skip("no Redis on 127.0.0.1:6379")
        monkeypatch.setenv("STORYGEN_LIMITS_REDIS_URL", REDIS)
    monkeypatch.setenv("STORYGEN_RETRY_BACKOFF_S", "0.01")
    settings = Settings()
    name = f"pause-test-{store}-{time.time_ns()}"
    url = libpq_url(engine)
    first, second = (_client(fake, settings, url, name) for _ in range(2))
    fake.queue("moderations", {"status": 429, "headers": {"Retry-After": "2"}})
    body = {"model": "m", "input": ["a"]}

    async def main() -> None:
        async with first.client() as a, second.client() as b:
            hit = asyncio.create_task(first.post_json(a, "moderations", body))
            while fake.count("moderations") == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the 429 is answered and the pause written
            other = await second.post_json(b, "moderations", body)
            assert other.attempts == 1  # it waited for the pause: no 429 of its own
            assert (await hit).attempts == 2

    try:
        asyncio.run(main())
    finally:
        close_shared_limits()
    times = fake.times("moderations")
    assert len(times) == 3
    # The second client never met the 429 itself, yet sent nothing during the pause.
    assert min(times[1:]) - times[0] >= 1.9


def test_a_token_that_reaches_its_caller_late_is_replaced_by_a_fresh_one(engine):
    # A starved thread or event loop delivers a token long after it was stamped: the provider
    # would count its request later than we did, so acquire() takes another (the stale one
    # stays counted), at most MAX_RETAKES times.
    name = f"stale-test-{time.time_ns()}"
    limit = shared_rates(name, 6000, 60.0, database_url=libpq_url(engine), redis_url=None)
    took: list[float] = []
    real_take = limit.take_once

    def slow_take(weight: int = 1) -> float:
        took.append(time.monotonic())
        if len(took) == 1:
            time.sleep(STALE_S + 0.2)  # the first token arrives stale
        return real_take(weight)

    limit.take_once = slow_take  # type: ignore[method-assign]
    try:
        returned = asyncio.run(limit.acquire())
        assert len(took) == 2 and returned >= took[1] - 0.05  # the fresh token's time
        took.clear()

        def always_late(weight: int = 1) -> float:
            took.append(time.monotonic())
            time.sleep(STALE_S + 0.1)
            return 0.0

        limit.take_once = always_late  # type: ignore[method-assign]
        asyncio.run(limit.acquire())
        assert len(took) == MAX_RETAKES + 1  # bounded: then it is used as it is
    finally:
        close_shared_limits()


@pytest.mark.timeout(120)
def test_a_limit_outlives_its_connections_and_keeps_removing_old_items(engine, monkeypatch):
    # A database restart ends every pooled connection: the next take gets a new one instead of
    # failing its call, and old items keep being removed (the library's leak thread died on
    # its first failed query and the bucket then grew for the life of the process).
    monkeypatch.setattr(shared_limits, "LEAK_EVERY_S", 0.0)
    name = f"cut-test-{time.time_ns()}"
    limit = shared_rates(name, 600, 2.0, database_url=libpq_url(engine), redis_url=None)
    table = f"ratelimit___storygen_{name.replace('-', '_')}"
    count = sa.text(f"select count(*) from {table}")
    # (a token that reached its caller late is taken again, the late one kept: hence >=)
    older = sa.text(f"select count(*) from {table} where item_timestamp < to_timestamp(:t)")
    try:
        for _ in range(3):
            asyncio.run(limit.acquire())
        with engine.connect() as conn:
            cut = conn.execute(
                sa.text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert cut >= 1  # the limit's pooled connection among them
        asyncio.run(limit.acquire())
        with engine.connect() as conn:
            assert conn.execute(count).scalar_one() >= 4
        time.sleep(2.0 + shared_limits.WINDOW_MARGIN_MS / 1000 + 0.3)  # past the longest window
        before_last = time.time() - 0.2
        asyncio.run(limit.acquire())
        with engine.connect() as conn:
            assert conn.execute(count).scalar_one() >= 1
            assert conn.execute(older, {"t": before_last}).scalar_one() == 0  # old ones gone
    finally:
        close_shared_limits()


@pytest.mark.parametrize("limits", ["shared", "process"])
def test_tokens_per_minute_hold_against_a_provider_counting_tokens(
    limits, engine, fake, monkeypatch
):
    # 6,000 tokens a minute counted over 2 s windows: 200 per window; each call may use ~70
    # (its messages + max_tokens 50), so 2 fit a window and 6 calls sent at once need 3.
    monkeypatch.setenv("STORYGEN_RATE_WINDOW_S", "2")
    monkeypatch.setenv("STORYGEN_LIMITS", limits)
    settings = Settings()
    fake.token_limit = (200, 2.0)
    http = ProviderHttp(
        provider="openai",
        base_url=fake.url,
        api_key=fake.api_key,
        rpm=6000,
        read_timeout_s=10,
        settings=settings,
        limit_name=f"tpm-test-{limits}-{time.time_ns()}",
        database_url=libpq_url(engine),
        tpm=6000,
    )
    fake.schema_only = True  # a reply from the schema below is enough here
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x" * 60}],
        "max_tokens": 50,
        "response_format": {"type": "json_schema", "json_schema": {"name": "T", "schema": schema}},
    }
    tokens = len(json.dumps(body["messages"])) // 4 + 50

    async def main() -> None:
        async with http.client() as client:
            await asyncio.gather(
                *(http.post_json(client, "chat/completions", body, tokens=tokens) for _ in range(6))
            )

    try:
        asyncio.run(main())
        times = fake.times("chat")
        assert len(times) == 6 and fake.rejected == 0
        assert times[-1] - times[0] >= 2 * 2.0  # three windows' worth: waited, not refused
        with pytest.raises(ProviderError, match=r"201 tokens can never fit STORYGEN_LLM_TPM=6000"):
            asyncio.run(_one(http, body, 201))
    finally:
        close_shared_limits()


async def _one(http: ProviderHttp, body: dict, tokens: int) -> None:
    async with http.client() as client:
        await http.post_json(client, "chat/completions", body, tokens=tokens)
