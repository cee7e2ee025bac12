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

from pyrate_limiter import Limiter, Rate

log = logging.getLogger("storygen.providers")

# Requests reach the provider a little after they take their token (a thread hop, a
# connection): the long window is stretched by this much so two requests a window apart by
# our clock are never seen inside one window by the provider's.
WINDOW_MARGIN_MS = 250


def rates_for(rpm: int, window_s: float) -> list[Rate]:
    """`rpm` as at most a second's worth at once (as the process-local limiter does, so 600
    RPM never fires 600 requests in one instant) and at most rpm * window / 60 per window."""
    burst = max(1, rpm // 60)
    per_window = max(1, round(rpm * window_s / 60))
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

    async def acquire(self) -> float:
        """Wait for this limit; returns the seconds waited."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        while True:
            wait = await loop.run_in_executor(self.thread, self._take)
            if wait <= 0:
                return time.monotonic() - started
            await asyncio.sleep(wait)

    def _take(self) -> float:
        wait = self.pauses.paused_until(self.name) - time.time()
        if wait > 0:
            return wait
        self.limiter.try_acquire(self.name, blocking=True)
        return 0.0

    async def pause(self, seconds: float) -> None:
        log.warning(
            "provider %s asked to slow down: every worker pauses %.1f s", self.name, seconds
        )
        await asyncio.to_thread(self.pauses.pause, self.name, seconds)


_lock = threading.Lock()
_limits: dict[tuple, SharedRates] = {}
_backends: dict[str, Any] = {}


def shared_rates(
    name: str, rpm: int, window_s: float, *, database_url: str, redis_url: str | None
) -> SharedRates:
    """The process's SharedRates for this limit and store (built once)."""
    key = (name, rpm, window_s, database_url, redis_url)
    with _lock:
        found = _limits.get(key)
        if found is None:
            bucket, pauses = _backend(name, rates_for(rpm, window_s), database_url, redis_url)
            executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"rate-{name}")
            found = _limits[key] = SharedRates(name, Limiter(bucket), pauses, executor)
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
