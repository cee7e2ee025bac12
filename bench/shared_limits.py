"""Provider limits shared by worker processes: N real processes, each sending provider requests
through the real retry/limit layer (`providers/http.py`, STORYGEN_LIMITS=shared) as fast as
their own concurrency allows, against the loopback fake enforcing the same limit (429 with
Retry-After above it). Figures: requests admitted, 429s, achieved rate as a share of the
limit, and the cost of one shared acquire against the process-local limiter.

    STORYGEN_DATABASE_URL=postgresql://... python -m bench.shared_limits --workers 1,2,4
    python -m bench.shared_limits --store redis --redis redis://127.0.0.1:6379/12

A limit of `rpm` requests per minute is enforced by both sides as rpm * window / 60 per
`window` seconds: a 20 s window keeps a run short with the same requests per minute."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-limits-0123456789"
WORKER = [sys.executable, "-m", "bench.shared_limits", "--worker"]


async def _send(seconds: float, concurrency: int, url: str) -> dict:
    from storygen_dagster.providers.factory import libpq_url
    from storygen_dagster.providers.http import ProviderHttp
    from storygen_dagster.settings import get_settings
    from storygen_dagster.storage.db import get_engine, resolve_database_url

    settings = get_settings()
    engine = get_engine(resolve_database_url(settings))
    http = ProviderHttp(
        provider="moderation",
        base_url=url,
        api_key=KEY,
        rpm=settings.llm_rpm,
        read_timeout_s=30,
        settings=settings,
        limit_name="bench:limits",
        database_url=libpq_url(engine),
    )
    stamps = _record_stamps(settings, engine)
    end = time.monotonic() + seconds
    done: list[float] = []
    retried = 0

    async def loop() -> None:
        nonlocal retried
        async with http.client() as client:
            while time.monotonic() < end:
                result = await http.post_json(client, "moderations", {"model": "m", "input": ["a"]})
                done.append(time.time())
                retried += result.attempts - 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return {
        "ok": len(done),
        "retried": retried,
        "first": min(done),
        "last": max(done),
        "stamps": stamps,
    }


def _record_stamps(settings, engine) -> list[float]:
    """The time (epoch s) each token this process takes is recorded at, as the bucket stores it."""
    from storygen_dagster.providers.factory import libpq_url
    from storygen_dagster.providers.shared_limits import shared_rates

    limit = shared_rates(
        "bench:limits",
        settings.llm_rpm,
        settings.rate_window_s,
        database_url=libpq_url(engine),
        redis_url=settings.limits_redis_url,
    )
    bucket = limit.limiter.bucket_factory.owned_buckets()[0]
    put, stamps = bucket.put, []

    def recording_put(item):
        admitted = put(item)
        if admitted:
            stamps.append(item.timestamp / 1000)
        return admitted

    bucket.put = recording_put  # type: ignore[method-assign]  # instrumented for the figure
    return stamps


def worker_main(argv: list[str]) -> None:
    seconds, concurrency, url = float(argv[0]), int(argv[1]), argv[2]
    sys.stdout.write(json.dumps(asyncio.run(_send(seconds, concurrency, url))) + "\n")


def measure(
    workers: int,
    seconds: float,
    rpm: int,
    window_s: float,
    *,
    latency_s: float = 0.2,
    concurrency: int = 8,
    database_url: str,
    redis_url: str | None = None,
) -> dict:
    """`workers` processes sharing `rpm` against a fake that enforces it."""
    from tests.fakes.provider_server import FakeProvider

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_LLM_RPM=str(rpm),
        STORYGEN_RATE_WINDOW_S=str(window_s),
        STORYGEN_LIMITS="shared",
        STORYGEN_RETRY_BACKOFF_S="0.2",
    )
    if redis_url:
        env["STORYGEN_LIMITS_REDIS_URL"] = redis_url
    with FakeProvider(api_key=KEY) as fake:
        fake.delay_s = latency_s
        fake.rate_limit = (max(1, round(rpm * window_s / 60)), window_s)
        procs = [
            subprocess.Popen(
                [*WORKER, str(seconds), str(concurrency), fake.url],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        outs = [p.communicate(timeout=seconds + 120)[0] for p in procs]
        codes = [p.returncode for p in procs]
        times = sorted(s.at for s in fake.seen if s.kind == "moderations")
        rejected = fake.rejected
    per_worker = [json.loads(o.strip().splitlines()[-1]) for o in outs if o.strip()]
    admitted = len(times) - rejected
    stamps = sorted(t for w in per_worker for t in w["stamps"])
    # Warmed up: from the first request on; the rate is measured over whole windows the
    # fake saw (requests admitted / span), against the limit per second.
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    limit_per_s = rpm / 60
    return {
        "workers": workers,
        "seconds": seconds,
        "rpm_limit": rpm,
        "window_s": window_s,
        "admitted": admitted,
        "rejected_429": rejected,
        "per_worker_ok": [w["ok"] for w in per_worker],
        "achieved_rpm": round(60 * (admitted - 1) / span, 1) if span else 0.0,
        "share_of_limit": round((admitted - 1) / span / limit_per_s, 3) if span else 0.0,
        "exit_codes": codes,
        # Tokens taken but not sent (replaced as stale: STALE_S in providers/shared_limits.py)
        "tokens_replaced": len(stamps) - len(times),
        # The k-th request's arrival at the provider after the k-th token by our clock: the
        # lag the window margin (WINDOW_MARGIN_MS) must cover for the provider to count no
        # more in its window than we did in ours (when no token was replaced). The fake
        # stamps arrivals with the machine's monotonic clock, the bucket in epoch seconds.
        "max_lag_ms": _max_lag_ms(stamps, [t + time.time() - time.monotonic() for t in times])
        if len(stamps) == len(times)
        else None,
    }


def _max_lag_ms(stamps: list[float], arrivals: list[float]) -> float | None:
    if not stamps:
        return None
    pairs = zip(stamps, sorted(arrivals), strict=False)
    return round(max(a - s for s, a in pairs) * 1000, 1)


def acquire_cost(database_url: str, redis_url: str | None, calls: int = 300) -> dict:
    """Seconds per acquire: shared (Postgres or Redis bucket) vs the process-local limiter,
    with a limit far above the calls (nothing waits): the bookkeeping alone."""
    from storygen_dagster.providers.limits import rate_limiter
    from storygen_dagster.providers.shared_limits import shared_rates

    async def run() -> tuple[float, float]:
        shared = shared_rates(
            "bench:cost", 100_000, 60.0, database_url=database_url, redis_url=redis_url
        )
        await shared.acquire()  # the pool and the table, once
        started = time.perf_counter()
        for _ in range(calls):
            await shared.acquire()
        shared_s = (time.perf_counter() - started) / calls
        local = rate_limiter("bench:cost", 100_000, 16)
        started = time.perf_counter()
        for _ in range(calls):
            await local.acquire()
        return shared_s, (time.perf_counter() - started) / calls

    shared_s, local_s = asyncio.run(run())
    return {
        "store": "redis" if redis_url else "postgres",
        "shared_ms_per_call": round(shared_s * 1000, 3),
        "local_ms_per_call": round(local_s * 1000, 4),
        "ratio": round(shared_s / local_s, 1) if local_s else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_limits")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--rpm", type=int, default=120)
    parser.add_argument("--window", type=float, default=20)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight per worker")
    parser.add_argument("--redis", default=None, help="shared limits in Redis at this URL")
    args = parser.parse_args(argv)
    server = os.environ.get("STORYGEN_DATABASE_URL")
    if not server:
        parser.error("set STORYGEN_DATABASE_URL (a server: the bench makes its own database)")
    with scratch_database(server) as url:
        run(args, url)


@contextlib.contextmanager
def scratch_database(server_url: str):
    """A migrated database of its own on the server, dropped at the end."""
    import sqlalchemy as sa

    from storygen_dagster.storage import migrate
    from storygen_dagster.storage.db import get_engine

    name = f"bench_limits_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        sa.make_url(server_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def run(args, url: str) -> None:
    sys.stdout.write(json.dumps({"figure": "acquire_cost", **acquire_cost(url, args.redis)}) + "\n")
    for n in (int(w) for w in args.workers.split(",")):
        m = measure(
            n,
            args.seconds,
            args.rpm,
            args.window,
            latency_s=args.latency,
            concurrency=args.concurrency,
            database_url=url,
            redis_url=args.redis,
        )
        sys.stdout.write(json.dumps({"figure": "shared_limits", **m}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
    else:
        main()
