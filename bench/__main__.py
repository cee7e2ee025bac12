"""Batch benchmark through the CLI's own path (materialize_stories, one in-process range run).

Providers: the offline providers with STORYGEN_OFFLINE_LATENCY_S = L (asyncio.sleep per call),
not a loopback HTTP server yet: the fake provider server lives on another branch."""

import argparse
import json
import os
import resource
import tempfile
import time


def _figure(name: str, **values) -> dict:
    row = {"figure": name, **values}
    print(json.dumps(row), flush=True)
    return row


def run_batch(count: int) -> dict:
    # Imported late: settings are read from the environment set in main().
    import dagster as dg

    from storygen_dagster.cli import Context
    from storygen_dagster.definitions import defs
    from storygen_dagster.domain.examples import demo_requests
    from storygen_dagster.pipeline import materialize_stories
    from storygen_dagster.storage.repository import register_request, story_overview

    ctx = Context()
    requests = demo_requests(count)
    for r in requests:
        register_request(ctx.engine, r.story_id, r, by="bench")
    ids = [r.story_id for r in requests]
    instance = ctx.instance()
    started = time.perf_counter()
    outcomes = materialize_stories(defs, instance, ids, tags={"storygen/source": "bench"})
    wall = time.perf_counter() - started
    overview = story_overview(ctx.engine)
    scenes = int(overview[overview["story_id"].isin(ids)]["scenes"].sum())
    # Event-log volume: every record Dagster stored for the batch's runs.
    logs = [e for o in outcomes for e in instance.all_logs(o.run_id)]
    log_bytes = sum(len(dg.serialize_value(e)) for e in logs)
    return {
        "wall_s": wall,
        "scenes": scenes,
        "ok": all(o.success for o in outcomes),
        "event_rows_per_story": round(len(logs) / count, 1),
        "event_bytes_per_story": round(log_bytes / count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--latency", type=float, default=0.5, help="per-call latency L (s)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stories", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="L=0.05 s, 3 stories")
    args = parser.parse_args()
    if args.quick:
        args.latency, args.stories = 0.05, 3
    home = tempfile.mkdtemp(prefix="storygen-bench-")
    os.environ.update(
        STORYGEN_HOME=home,
        STORYGEN_OFFLINE_LATENCY_S=str(args.latency),
        STORYGEN_MAX_CONCURRENCY=str(args.concurrency),
    )
    # A fresh embedded database, so the bench never writes into a shared one.
    os.environ.pop("STORYGEN_DATABASE_URL", None)
    L = args.latency
    rows = []
    single = run_batch(1)
    # Step-level critical path: the assets run one after another in the in-process executor,
    # so story -> visual_profile -> base_style -> moment -> image is 5 L (4 L if the two
    # story-level calls ran together).
    rows.append(
        _figure(
            "single_story",
            wall_s=round(single["wall_s"], 3),
            critical_path_s=4 * L,
            ratio=round(single["wall_s"] / (4 * L), 2),
            ok=single["ok"],
        )
    )
    batch = run_batch(args.stories)
    calls = 3 * args.stories + 2 * batch["scenes"]
    ideal = max(4 * L, calls * L / args.concurrency)
    rows.append(
        _figure(
            "batch",
            stories=args.stories,
            calls=calls,
            wall_s=round(batch["wall_s"], 3),
            ideal_s=round(ideal, 3),
            ratio=round(batch["wall_s"] / ideal, 2),
            speedup_vs_sequential=round(calls * L / batch["wall_s"], 2),
            ok=batch["ok"],
        )
    )
    rows.append(
        _figure(
            "event_log",
            rows_per_story=batch["event_rows_per_story"],
            bytes_per_story=batch["event_bytes_per_story"],
        )
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(_figure("peak_rss", mib=round(peak, 1)))
    print(f"{'figure':<14} values")
    for row in rows:
        print(
            f"{row['figure']:<14} " + ", ".join(f"{k}={v}" for k, v in row.items() if k != "figure")
        )


if __name__ == "__main__":
    main()
