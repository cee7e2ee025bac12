"""Provider request rates shared by every process, run and worker: pyrate-limiter's buckets in
Postgres (the default: every deployment has one) or Redis (STORYGEN_LIMITS_REDIS_URL), and a
shared "paused until" per provider that a 429 with Retry-After sets for everyone.

The buckets are synchronous (psycopg pool, redis client); each limit gets one thread per
process that does the blocking acquire (the library's own wait), so the event loops of the
story steps never block on it and a process queues its callers in order. Limiters and pools
live for the process, across the `asyncio.run` of each step."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from pyrate_limiter import AbstractBucket, Limiter, Rate, RateItem, SingleBucketFactory

log = logging.getLogger("storygen.providers")

# Requests reach the provider a little after they take their token (the bucket's own queries,
# a thread hop, the event loop, a connection): the long window is stretched by this much so
# two requests a window apart by our clock are never seen inside one window by the provider's.
# Measured (bench/shared_limits.py, max_lag_ms): 0.13 s on a quiet machine, up to 0.66 s with
# 3 workers on 2 cores at load 8; 250 ms let one 429 through in CI.
WINDOW_MARGIN_MS = 1000
# A token older than this when its request is about to be sent is replaced (at most MAX_RETAKES
# times): the margin covers the rest of the way to the provider.
STALE_S = 0.75 * WINDOW_MARGIN_MS / 1000  # leaves 0.25 s for the event loop and the wire
MAX_RETAKES = 3
# After a refused try, wait what the bucket says plus this, then try again with a new stamp.
RETRY_BUFFER_S = 0.02
# How often a take also removes the bucket's items older than its longest window. Not the
# library's leak thread: one failed query (the database restarting) ended that thread for
# the life of the process, and the bucket then grew without bound.
LEAK_EVERY_S = 10.0


def tokens_per_window(tpm: int, window_s: float) -> int:
    """A per-minute limit (requests or tokens) as its count per window of `window_s`."""
    return max(1, round(tpm * window_s / 60))


def token_rates_for(tpm: int, window_s: float) -> list[Rate]:
    """`tpm` tokens a minute as tpm * window / 60 per window (no per-second cap: one request
    may need more tokens than a second's worth)."""
    return [Rate(tokens_per_window(tpm, window_s), round(window_s * 1000) + WINDOW_MARGIN_MS)]


def rates_for(rpm: int, window_s: float) -> list[Rate]:
    """`rpm` as at most a second's worth at once (as the process-local limiter does, so 600
    RPM never fires 600 requests in one instant) and at most rpm * window / 60 per window."""
    burst = max(1, rpm // 60)
    per_window = tokens_per_window(rpm, window_s)  # the same count per window, of requests
    return [
        Rate(burst, round(60_000 * burst / rpm)),
        Rate(per_window, round(window_s * 1000) + WINDOW_MARGIN_MS),
    ]


class PauseStore(Protocol):
    def paused_until(self, name: str) -> float:
        """Epoch seconds until which calls to `name` wait (0 = not paused)."""

    def pause(self, name: str, seconds: float) -> None:
        """Every process waits `seconds` from now before its next call to `name`."""


@dataclass
class SharedRates:
    """One provider limit (`name`): `acquire()` waits for a shared pause, then for a token."""

    name: str
    limiter: Limiter
    pauses: PauseStore
    thread: concurrent.futures.ThreadPoolExecutor
    next_leak: float = 0.0  # time.monotonic() of the next leak (take_once's thread only)

    async def acquire(self, weight: int = 1) -> float:
        """Wait for this limit and take a token; returns when it was taken (time.monotonic(),
        read before the try)."""
        while True:
            taken, wait = await self.try_acquire(weight)
            if wait <= 0:
                return taken
            await asyncio.sleep(wait)

    async def try_acquire(self, weight: int = 1) -> tuple[float, float]:
        """One try: (when the token was taken, 0.0), or (when tried, the seconds to wait before
        trying again). A token that took longer than STALE_S to reach the caller (a starved
        thread or event loop) is replaced by a fresh one: the stale one stays counted, so our
        count of a window is never below what the provider sees in it."""
        loop = asyncio.get_running_loop()
        stale = 0
        while True:
            wait, tried = await loop.run_in_executor(self.thread, self._take_timed, weight)
            if wait > 0:
                return tried, wait
            # (a weighted take, e.g. a request's tokens, is not taken twice)
            if weight > 1 or time.monotonic() - tried <= STALE_S or stale >= MAX_RETAKES:
                return tried, 0.0
            stale += 1
            log.debug(
                "%s: token %.2f s old when it reached the caller, taking another",
                self.name,
                time.monotonic() - tried,
            )

    def _take_timed(self, weight: int) -> tuple[float, float]:
        """take_once, and when it started: a token's age counts from its try, not from when
        the caller queued for this limit's thread. (Counted from the queueing, a batch's
        calls queued behind each other's takes went stale and were taken again, up to 4
        takes each: the thread fell further behind, and 20 stories' calls stopped for
        seconds at a time on a loaded machine.)"""
        tried = time.monotonic()
        return self.take_once(weight), tried

    def take_once(self, weight: int = 1) -> float:
        """0 when a token was taken now, else the seconds to wait before trying again.

        Not the library's blocking wait: after each sleep it stamps the waiting item with the
        time it planned to admit it (first try + planned sleeps), not the time it did, and a
        process that sleeps in it loses every race to one that keeps trying. Measured with 3
        workers at load ~8 (bench/shared_limits.py): tokens stamped up to 1.24 s before their
        request reached the provider and requests split 10/9/91 between the workers; with a
        fresh stamp per try, 0.57-0.66 s and 39/30/40."""
        wait = self.pauses.paused_until(self.name) - time.time()
        if wait > 0:
            return wait
        factory = self.limiter.bucket_factory
        item = factory.wrap_item(self.name, weight)
        assert isinstance(item, RateItem)  # a synchronous bucket: Postgres or Redis
        bucket = factory.get(item)
        assert isinstance(bucket, AbstractBucket)
        if time.monotonic() >= self.next_leak:
            self.next_leak = time.monotonic() + LEAK_EVERY_S
            self._leak(bucket, item.timestamp)
        if bucket.put(item):
            return 0.0
        wait_ms = bucket.waiting(item)
        assert isinstance(wait_ms, int)
        return max(wait_ms, 0) / 1000 + RETRY_BUFFER_S

    def _leak(self, bucket: AbstractBucket, now_ms: int) -> None:
        try:
            bucket.leak(now_ms)
        except Exception as exc:  # the next take tries again; the put says if the store is gone
            log.debug("%s: could not remove old items: %s", self.name, exc)

    async def pause(self, seconds: float) -> None:
        log.warning(
            "provider %s asked to slow down: every worker pauses %.1f s", self.name, seconds
        )
        await asyncio.to_thread(self.pauses.pause, self.name, seconds)


_lock = threading.Lock()
_limits: dict[tuple, SharedRates] = {}
_backends: dict[str, Any] = {}


def shared_rates(
    name: str,
    rpm: int,
    window_s: float,
    *,
    database_url: str,
    redis_url: str | None,
    tokens: bool = False,
) -> SharedRates:
    """The process's SharedRates for this limit and store (built once). With `tokens`, `rpm`
    counts tokens a minute and each acquire takes a request's tokens."""
    key = (name, rpm, window_s, database_url, redis_url)
    with _lock:
        found = _limits.get(key)
        if found is None:
            rates = (token_rates_for if tokens else rates_for)(rpm, window_s)
            bucket, pauses = _backend(name, rates, database_url, redis_url)
            executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"rate-{name}")
            limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False))
            found = _limits[key] = SharedRates(name, limiter, pauses, executor)
    return found


def _table(name: str) -> str:
    return "storygen_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _backend(name: str, rates: list[Rate], database_url: str, redis_url: str | None):
    if redis_url:
        from pyrate_limiter import RedisBucket
        from redis import Redis

        from storygen_dagster.providers.redis_pauses import RedisPauses

        client = _backends.get(redis_url)
        if client is None:
            client = _backends[redis_url] = Redis.from_url(redis_url, socket_timeout=10)
        return RedisBucket.init(rates, client, f"{_table(name)}:bucket"), RedisPauses(client)
    from psycopg_pool import ConnectionPool
    from pyrate_limiter import PostgresBucket

    from storygen_dagster.storage.provider_pauses import PostgresPauses

    pool = _backends.get(database_url)
    if pool is None:
        pool = _backends[database_url] = ConnectionPool(
            database_url,
            min_size=1,
            max_size=4,
            open=True,
            # After a database restart every pooled connection is dead: each one is checked
            # when taken from the pool and replaced, not handed to a take that then fails.
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": False},
            name="storygen-limits",
        )
    return PostgresBucket(pool, _table(name), rates), PostgresPauses(database_url)


def close_shared_limits() -> None:
    """Stop every limiter (its leak thread), pool and client of this process (tests, before
    their database is dropped)."""
    with _lock:
        for limit in _limits.values():
            limit.limiter.close()
            limit.thread.shutdown(wait=False)
        for backend in _backends.values():
            backend.close()
        _limits.clear()
        _backends.clear()
