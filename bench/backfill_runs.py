"""Backfill cost: one run per story (multiprocess executor, as a per-partition UI backfill
launches) vs one range run over all stories (BackfillPolicy.single_run, in-process executor).

    STORYGEN_DATABASE_URL=postgresql://... python -m bench.backfill_runs 10

`python -m bench --naive N` runs `measure(N)` as the `naive_dagster` figure, with the bench's
providers (the loopback fake or offline) and database.
"""

import sys
import tempfile
import time

import dagster as dg

from bench.tags import FRESH
from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.partitions import RANGE_END, RANGE_START, ensure_partitions
from storygen_dagster.domain.examples import demo_requests
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import migrate
from storygen_dagster.storage.db import get_engine, resolve_database_url
from storygen_dagster.storage.repository import register_request


def _job(executor: dg.ExecutorDefinition) -> dg.JobDefinition:
    defs = build_definitions()
    job = defs.resolve_job_def("storybook_job")
    return job.with_executor_def(executor) if hasattr(job, "with_executor_def") else job


def multiprocess_job() -> dg.JobDefinition:
    return _job(dg.multiprocess_executor)


def in_process_job() -> dg.JobDefinition:
    return _job(dg.in_process_executor)


def measure(count: int, prefix: str = "demo") -> dict:
    """`count` stories as one multiprocess run each, `count` others as one range run."""
    url = resolve_database_url(get_settings())
    migrate.upgrade(url)
    engine = get_engine(url)
    requests = [
        r.model_copy(update={"story_id": f"{prefix}-{i + 1:02d}"})
        for i, r in enumerate(demo_requests(2 * count))
    ]
    for r in requests:
        register_request(engine, r.story_id, r, by="bench")
    ids = [r.story_id for r in requests]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        instance = dg.DagsterInstance.local_temp(tmp)
        ensure_partitions(instance, ids)
        per_story, single = ids[:count], ids[count:]
        started = time.perf_counter()
        for sid in per_story:
            with dg.execute_job(
                dg.reconstructable(multiprocess_job),
                instance,
                tags={"dagster/partition": sid, **FRESH},
            ) as result:
                ok = ok and result.success
        per_story_s = time.perf_counter() - started
        started = time.perf_counter()
        with dg.execute_job(
            dg.reconstructable(in_process_job),
            instance,
            tags={RANGE_START: single[0], RANGE_END: single[-1], **FRESH},
        ) as result:
            ok = ok and result.success
        single_s = time.perf_counter() - started
    return {"stories": count, "per_story_runs_s": per_story_s, "range_run_s": single_s, "ok": ok}


def main(count: int) -> None:
    m = measure(count)
    per_story_s, single_s = m["per_story_runs_s"], m["range_run_s"]
    sys.stdout.write(
        f"{count} stories: one multiprocess run per story {per_story_s:.1f} s "
        f"({per_story_s / count:.1f} s/story); one range run {single_s:.1f} s "
        f"({single_s / count:.2f} s/story); ratio {per_story_s / single_s:.1f}x; ok={m['ok']}\n"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
