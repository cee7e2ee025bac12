"""How many stories per run (STORYGEN_STORIES_PER_RUN): the same stories as runs of 1, 10, 25
and 50, against the loopback fake provider with latency L, the runs one after another in one
process (one worker's share of a backfill). Small runs pay the run's fixed cost (start,
instance, resources, event writes) more often and keep fewer calls in flight; large runs are
fewer units for the queue to spread over workers and lose more work to one crash.

    python -m bench.stories_per_run --stories 50 --sizes 1,10,25,50 --latency 0.5

A fresh embedded Postgres under a temp STORYGEN_HOME (as `python -m bench`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

from bench.tags import FRESH


def measure(stories: int, sizes: list[int], latency: float, concurrency: int) -> list[dict]:
    from bench.fake_server import FakeServerProcess

    os.environ.update(
        STORYGEN_HOME=tempfile.mkdtemp(prefix="storygen-perrun-"),
        STORYGEN_MAX_CONCURRENCY=str(concurrency),
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
        STORYGEN_LIMITS="process",  # the bench's provider has no limit to share
    )
    for var in ("STORYGEN_DATABASE_URL", "DAGSTER_HOME"):
        os.environ.pop(var, None)
    rows = []
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeServerProcess(latency))
        os.environ.update(fake.environ())
        from storygen_dagster.cli import Context
        from storygen_dagster.definitions import build_definitions
        from storygen_dagster.domain.examples import demo_requests
        from storygen_dagster.pipeline import materialize_stories
        from storygen_dagster.storage.reads import story_overview
        from storygen_dagster.storage.repository import register_request

        ctx = Context()
        instance = ctx.instance()
        defs = build_definitions()
        for size in sizes:
            requests = [
                r.model_copy(update={"story_id": f"n{size}-{i:03d}"})
                for i, r in enumerate(demo_requests(stories))
            ]
            for r in requests:
                register_request(ctx.engine, r.story_id, r, by="bench")
            ids = [r.story_id for r in requests]
            started = time.perf_counter()
            ok = True
            for i in range(0, stories, size):
                outcomes = materialize_stories(defs, instance, ids[i : i + size], tags=FRESH)
                ok = ok and all(o.success for o in outcomes)
            wall = time.perf_counter() - started
            view = story_overview(ctx.engine)
            mine = view[view["story_id"].isin(ids)]
            calls = 3 * stories + 2 * int(mine["scenes"].sum())
            ideal = calls * latency / concurrency
            rows.append(
                {
                    "figure": "stories_per_run",
                    "stories_per_run": size,
                    "runs": -(-stories // size),
                    "wall_s": round(wall, 1),
                    "per_story_s": round(wall / stories, 2),
                    "ratio_vs_ideal": round(wall / ideal, 2),
                    "ok": ok and bool((mine["status"] == "succeeded").all()),
                }
            )
            sys.stdout.write(json.dumps(rows[-1]) + "\n")
            sys.stdout.flush()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stories_per_run")
    parser.add_argument("--stories", type=int, default=50)
    parser.add_argument("--sizes", default="1,10,25,50")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = measure(args.stories, sizes, args.latency, args.concurrency)
    base = rows[-1]["wall_s"]
    for row in rows:
        sys.stdout.write(f"{row['stories_per_run']:>4} per run: {row['wall_s'] / base:.2f}x\n")


if __name__ == "__main__":
    main()
