"""`python -m bench`: one JSON line per figure, then a table. Ratios are against baselines
measured in the same process (timings on a shared machine are noise; ratios travel better).

Figures:
- single_story, batch, event_log: stories through the CLI's own path
  (pipeline.materialize_stories: one in-process range run), with the real HTTP providers aimed
  at the loopback fake provider in a separate process (`--providers http`, default) or with the
  offline providers' simulated latency (`--providers offline`). Baseline: the same calls sent
  straight to the provider (bench/baseline.py).
- naive_dagster (`--naive N`): N stories as one multiprocess run each vs N as one range run.
- providers: the requests the fake saw, against the requests the figures made.
- db_upserts: scene rows/s through repository.upsert_scene_columns, batched vs per row.
- partitions_10k: sensor tick, `storygen status` and the UI partition listing with 10k
  partitions, against the same with a handful.
- peak_rss.

A fresh embedded Postgres under a temp STORYGEN_HOME: the bench never writes into a shared
database (STORYGEN_DATABASE_URL and DAGSTER_HOME are ignored)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time

from bench.tags import FRESH

FIGURES = ("single_story", "batch", "naive_dagster", "db_upserts", "partitions_10k")


def _figure(name: str, **values) -> dict:
    row = {"figure": name, **values}
    print(json.dumps(row), flush=True)
    return row


def _note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _step_seconds(logs) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS/FAILURE per step, from the runs' event logs."""
    starts, spans = {}, {}
    for entry in logs:
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        key = (entry.run_id, event.step_key)
        if event.event_type_value == "STEP_START":
            starts[key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and key in starts:
            spans[event.step_key] = spans.get(event.step_key, 0.0) + entry.timestamp - starts[key]
    return {k: round(v, 2) for k, v in spans.items()}


def run_batch(ctx, instance, count: int, prefix: str) -> dict:
    import dagster as dg

    from storygen_dagster.definitions import build_definitions
    from storygen_dagster.domain.examples import demo_requests
    from storygen_dagster.pipeline import materialize_stories
    from storygen_dagster.storage.reads import story_overview
    from storygen_dagster.storage.repository import register_request

    requests = [
        r.model_copy(update={"story_id": f"{prefix}-{i + 1:03d}"})
        for i, r in enumerate(demo_requests(count))
    ]
    for r in requests:
        register_request(ctx.engine, r.story_id, r, by="bench")
    ids = [r.story_id for r in requests]
    tags = {"storygen/source": "bench", **FRESH}
    started = time.perf_counter()
    outcomes = materialize_stories(build_definitions(), instance, ids, tags=tags)
    wall = time.perf_counter() - started
    overview = story_overview(ctx.engine)
    mine = overview[overview["story_id"].isin(ids)]
    scenes = int(mine["scenes"].sum())
    # Event-log volume: every record Dagster stored for the batch's runs.
    logs = [e for o in outcomes for e in instance.all_logs(o.run_id)]
    log_bytes = sum(len(dg.serialize_value(e)) for e in logs)
    return {
        "wall_s": wall,
        "scenes": scenes,
        # Per story: story, visual profile, base style and the character sheet, then a moment
        # and a picture per scene.
        "calls": 4 * count + 2 * scenes,
        "ok": all(o.success for o in outcomes) and bool((mine["status"] == "succeeded").all()),
        "steps_s": _step_seconds(logs),
        "event_rows_per_story": round(len(logs) / count, 1),
        "event_bytes_per_story": round(log_bytes / count),
    }


class Baseline:
    """Sends waves of provider calls straight to the provider (see bench/baseline.py)."""

    def __init__(self, args, fake):
        self.args, self.fake, self.calls = args, fake, 0

    def __call__(self, waves: list[tuple[int, int]]) -> float:
        from bench import baseline

        self.calls += sum(c + i for c, i in waves)
        if self.fake is None:
            return baseline.offline_calls(self.args.latency, waves, self.args.concurrency)
        from bench.fake_server import CHAT_MODEL, IMAGE_MODEL
        from storygen_dagster.settings import get_settings

        s = get_settings()
        size = (s.image_width, s.image_height)
        models = (CHAT_MODEL, IMAGE_MODEL)
        return baseline.http_calls(
            self.fake.url, self.fake.key, models, waves, size, self.args.concurrency
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.5, help="per-call latency L (s)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stories", type=int, default=50)
    parser.add_argument(
        "--providers",
        choices=("http", "offline"),
        default="http",
        help="http: real providers against the loopback fake in its own process; "
        "offline: offline providers sleeping L per call",
    )
    parser.add_argument("--upsert-stories", type=int, default=500, help="db_upserts: stories")
    parser.add_argument("--partitions", type=int, default=10_000, help="partitions_10k: N")
    parser.add_argument("--pending", type=int, default=50, help="requests pending at the tick")
    parser.add_argument(
        "--materialized", type=int, default=1000, help="partitions_10k: storybook events"
    )
    parser.add_argument(
        "--naive", type=int, default=0, metavar="N", help="naive_dagster on N stories (0 = skip)"
    )
    parser.add_argument(
        "--only", default=",".join(FIGURES), help=f"comma-separated subset of {','.join(FIGURES)}"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="L=0.05 s, 3 stories, 320x240 images, 25x4 upserts, 300 partitions, 5 pending, "
        "20 materialized",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.latency, args.stories, args.upsert_stories = 0.05, 3, 25
        args.partitions, args.pending, args.materialized = 300, 5, 20
    args.only = {f.strip() for f in args.only.split(",") if f.strip()}
    unknown = args.only - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    home = tempfile.mkdtemp(prefix="storygen-bench-")
    os.environ.update(
        STORYGEN_HOME=home,
        STORYGEN_OFFLINE_LATENCY_S=str(args.latency if args.providers == "offline" else 0),
        STORYGEN_MAX_CONCURRENCY=str(args.concurrency),
    )
    if args.quick:  # small pictures: painting them is most of a quick run's CPU
        os.environ.update(STORYGEN_IMAGE_WIDTH="320", STORYGEN_IMAGE_HEIGHT="240")
    # A fresh embedded database and instance, so the bench never writes into shared ones.
    for var in ("STORYGEN_DATABASE_URL", "DAGSTER_HOME"):
        os.environ.pop(var, None)
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        fake = None
        wants_providers = args.only & {"single_story", "batch"} or (
            "naive_dagster" in args.only and args.naive > 0
        )
        if args.providers == "http" and wants_providers:
            from bench.fake_server import FakeServerProcess

            fake = stack.enter_context(FakeServerProcess(args.latency))
            os.environ.update(fake.environ())
        rows += provider_figures(args, fake)
        stack.close()  # stops the fake: its request counts are known from here on
        if fake is not None:
            rows.append(providers_figure(args, fake, rows))
        rows += db_figures(args)
    rows.append(_figure("peak_rss", **PEAKS, end_mib=_rss_mib()))
    _note(f"done in {time.perf_counter() - started:.1f} s")
    # The short table: scalar values only (the JSON lines carry the breakdowns).
    print(f"{'figure':<15} values")
    for row in rows:
        values = ", ".join(
            f"{k}={v}" for k, v in row.items() if k != "figure" and not isinstance(v, dict)
        )
        print(f"{row['figure']:<15} {values}")


PEAKS: dict = {}
EXPECTED_CALLS = {"pipeline": 0, "baseline": 0}


def provider_figures(args, fake) -> list[dict]:
    # Imported late: settings and resources are read from the environment set in main().
    from storygen_dagster.cli import Context

    rows: list[dict] = []
    wanted = args.only & {"single_story", "batch", "naive_dagster"}
    if not wanted:
        return rows
    L, conc = args.latency, args.concurrency
    ctx = Context()
    instance = ctx.instance()
    measure_baseline = Baseline(args, fake)
    common = {"providers": args.providers, "latency_s": L}
    if "single_story" in wanted:
        _note("single_story")
        single = run_batch(ctx, instance, 1, "single")
        EXPECTED_CALLS["pipeline"] += single["calls"]
        n = single["scenes"]
        # The calls' dependency chain: story -> (visual profile, base style) -> n moments ->
        # the character sheet -> n images: 5 L when every wave runs fully in parallel.
        base = measure_baseline([(1, 0), (2, 0), (n, 0), (0, 1), (0, n)])
        target = 1.2 * 5 * L + 1.5
        rows.append(
            _figure(
                "single_story",
                **common,
                wall_s=round(single["wall_s"], 3),
                baseline_s=round(base, 3),
                ratio=round(single["wall_s"] / base, 2),
                critical_path_s=5 * L,
                target_s=round(target, 2),
                met=single["wall_s"] <= target,
                steps_s=single["steps_s"],
                ok=single["ok"],
            )
        )
    if "batch" in wanted:
        _note(f"batch of {args.stories}")
        batch = run_batch(ctx, instance, args.stories, "batch")
        EXPECTED_CALLS["pipeline"] += batch["calls"]
        PEAKS["after_batch_mib"] = _rss_mib()
        calls = batch["calls"]
        chat, images = 3 * args.stories + batch["scenes"], args.stories + batch["scenes"]
        base = measure_baseline([(chat, images)])
        ideal = max(5 * L, calls * L / conc)
        target = 1.5 * ideal + 10
        rows.append(
            _figure(
                "batch",
                **common,
                stories=args.stories,
                concurrency=conc,
                calls=calls,
                wall_s=round(batch["wall_s"], 3),
                baseline_s=round(base, 3),
                ratio=round(batch["wall_s"] / base, 2),
                ideal_s=round(ideal, 3),
                ratio_vs_ideal=round(batch["wall_s"] / ideal, 2),
                speedup_vs_sequential=round(calls * L / batch["wall_s"], 2),
                target_s=round(target, 2),
                met=batch["wall_s"] <= target,
                steps_s=batch["steps_s"],
                ok=batch["ok"],
            )
        )
        rows.append(
            _figure(
                "event_log",
                rows_per_story=batch["event_rows_per_story"],
                bytes_per_story=batch["event_bytes_per_story"],
                target_rows_per_story=100,
                ok=batch["event_rows_per_story"] <= 100,
            )
        )
    if "naive_dagster" in wanted and args.naive > 0:
        rows.append(naive_figure(args, ctx, common, rows))
    EXPECTED_CALLS["baseline"] = measure_baseline.calls
    return rows


def naive_figure(args, ctx, common: dict, rows: list[dict]) -> dict:
    from bench import backfill_runs
    from storygen_dagster.storage.reads import story_overview

    n = args.naive
    _note(f"naive_dagster: {n} multiprocess runs + one range run of {n}")
    m = backfill_runs.measure(n, prefix="naive")
    overview = story_overview(ctx.engine)
    mine = overview[overview["story_id"].str.startswith("naive-")]
    EXPECTED_CALLS["pipeline"] += 3 * len(mine) + 2 * int(mine["scenes"].sum())
    per_story = m["per_story_runs_s"] / n
    range_per_story = m["range_run_s"] / n
    batch = next((r for r in rows if r["figure"] == "batch"), None)
    values = {
        **common,
        "measured_on_stories": n,
        "per_story_runs_s": round(m["per_story_runs_s"], 2),
        "per_story_s": round(per_story, 2),
        "range_run_s": round(m["range_run_s"], 2),
        "range_run_per_story_s": round(range_per_story, 3),
        "ratio": round(m["per_story_runs_s"] / m["range_run_s"], 2),
        "ok": m["ok"],
    }
    if batch is not None:
        # Scaled: one multiprocess run per story, run one after another, for the batch's
        # stories, against the batch's measured range run.
        projected = per_story * batch["stories"]
        values.update(
            scaled_to_stories=batch["stories"],
            scaled_per_story_runs_s=round(projected, 1),
            scaled_ratio_vs_batch=round(projected / batch["wall_s"], 1),
        )
    return _figure("naive_dagster", **values)


def providers_figure(args, fake, rows: list[dict]) -> dict:
    seen = fake.stats.get("chat", 0) + fake.stats.get("images", 0)
    expected = EXPECTED_CALLS["pipeline"] + EXPECTED_CALLS["baseline"]
    return _figure(
        "providers",
        providers=args.providers,
        fake_chat_requests=fake.stats.get("chat", 0),
        fake_image_requests=fake.stats.get("images", 0),
        pipeline_calls=EXPECTED_CALLS["pipeline"],
        baseline_calls=EXPECTED_CALLS["baseline"],
        max_in_flight=fake.stats.get("max_in_flight", 0),
        ok=seen == expected,
    )


def db_figures(args) -> list[dict]:
    from storygen_dagster.cli import Context

    rows: list[dict] = []
    ctx = Context()
    # partitions_10k first: its baseline then sees only the stories of the figures above.
    if "partitions_10k" in args.only:
        from bench import partitions

        _note(f"partitions_10k: {args.partitions} partitions, {args.pending} pending")
        m = partitions.measure(
            ctx.engine, ctx.instance(), ctx.url, args.partitions, args.pending, args.materialized
        )
        big = m["big"]
        rows.append(
            _figure(
                "partitions_10k",
                partitions=big["partitions"],
                pending=args.pending,
                materialized=big["materialized"],
                sensor_tick_s=big["sensor_tick_s"],
                status_s=big["status_s"],
                ui_partition_keys_s=big["ui_partition_keys_s"],
                ui_materialized_s=big["ui_materialized_s"],
                ui_partition_status_s=big["ui_partition_status_s"],
                **{k: v for k, v in m.items() if k.endswith("_ratio") or k.startswith("setup")},
                target_s=5,
                met=big["sensor_tick_s"] < 5 and big["status_s"] < 5,
                baseline=m["baseline"],
                ok=m["ok"],
            )
        )
    if "db_upserts" in args.only:
        from bench import db_upserts

        _note(f"db_upserts: {args.upsert_stories} stories x 4 scenes, three ways")
        m = db_upserts.measure(ctx.engine, args.upsert_stories)
        b, s, r = m["batched"], m["per_story"], m["row_by_row"]
        rows.append(
            _figure(
                "db_upserts",
                rows=b["rows"],
                batched_rows_per_s=b["rows_per_s"],
                per_story_rows_per_s=s["rows_per_s"],
                row_by_row_rows_per_s=r["rows_per_s"],
                ratio_batched_vs_row=round(b["rows_per_s"] / r["rows_per_s"], 1),
                ratio_per_story_vs_row=round(s["rows_per_s"] / r["rows_per_s"], 1),
                target_rows_per_s=10_000,
                met=b["rows_per_s"] >= 10_000,
                batched=b,
                per_story=s,
                row_by_row=r,
                ok=m["ok"],
            )
        )
    return rows


if __name__ == "__main__":
    main()
