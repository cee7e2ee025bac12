"""A chunked backfill on dagster-celery workers: `stories` stories as runs of `per_run`
(storybook_celery_job, one step per run), launched together; every step goes to the Celery
queue on Redis (or RabbitMQ) and `workers` worker processes, started the way an operator
starts them (`dagster-celery worker start`), take them. Returns the wall time, the steps each
worker took and the stories' statuses.

    STORYGEN_DATABASE_URL=postgresql://... python -m bench.celery_workers --workers 1,2

The stories use the offline providers with a simulated latency (STORYGEN_OFFLINE_LATENCY_S),
so a step's time is its provider calls, as in production."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.dev_process import group_members

ROOT = Path(__file__).resolve().parents[1]
CELERY = str(Path(sys.executable).with_name("dagster-celery"))
START = [CELERY, "worker", "start", "-A", "dagster_celery.app", "-l", "info"]
RUN = [sys.executable, "-m", "bench.celery_workers", "--run"]


@contextlib.contextmanager
def celery_workers(count: int, home: Path, config: dict, env: dict[str, str]):
    """`count` worker processes, one step at a time each; yields their log paths."""
    (home / "celery.yaml").write_text(yaml.safe_dump({"execution": {"config": config}}))
    procs, logs = [], []
    try:
        for i in range(count):
            path = home / f"worker-{i}.log"
            log = open(path, "w")  # closed below
            logs.append((path, log))
            procs.append(
                subprocess.Popen(
                    [*START, "-y", str(home / "celery.yaml"), "-n", f"w{i}", "--", "-c", "1"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield [p for p, _ in logs]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=30)
                deadline = time.monotonic() + 30  # the celery pool of the group, too
                while group_members(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
        for _, log in logs:
            log.close()


def wait_ready(logs: list[Path], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not all("ready." in p.read_text() for p in logs):
        if time.monotonic() > deadline:
            raise TimeoutError("celery workers not ready: " + logs[0].read_text()[-2000:])
        time.sleep(0.5)


def measure(
    workers: int,
    stories: int,
    per_run: int,
    *,
    database_url: str,
    broker: str,
    backend: str | None = None,
) -> dict:
    import dagster as dg

    from storygen_dagster.defs.partitions import contiguous_ranges
    from storygen_dagster.domain.models import StoryRequest
    from storygen_dagster.instance import dagster_yaml
    from storygen_dagster.storage import reads
    from storygen_dagster.storage import repository as repo
    from storygen_dagster.storage.db import get_engine

    home = Path(tempfile.mkdtemp(prefix="storygen-celery-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(database_url)))
    config = {"broker": broker, "backend": backend or broker}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        # dagster-celery starts `celery` from PATH: this interpreter's.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        DAGSTER_HOME=str(home / "dagster"),
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_HOME=str(home / "sg"),
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
        STORYGEN_OFFLINE_LATENCY_S=os.environ.get("STORYGEN_OFFLINE_LATENCY_S", "0.5"),
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith(("STORYGEN_", "DAGSTER_"))})
    engine = get_engine(database_url)
    prefix = f"cel{workers}"
    ids = [f"{prefix}-{i}" for i in range(stories)]
    for i, sid in enumerate(ids):
        repo.register_request(engine, sid, StoryRequest(story_id=sid, age=3 + i % 4), "bench")
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    instance.add_dynamic_partitions("stories", ids)
    chunks = contiguous_ranges(instance.get_dynamic_partitions("stories"), ids, per_run)

    with celery_workers(workers, home, config, env) as logs:
        wait_ready(logs)
        started = time.perf_counter()
        # Each run orchestrated by its own process, as run workers would (dagster's
        # execute_job does not run from several threads of one process).
        runs = [
            subprocess.Popen([*RUN, chunk[0], chunk[-1], json.dumps(config)], env=env, cwd=ROOT)
            for chunk in chunks
        ]
        results = [p.wait(timeout=600) == 0 for p in runs]
        wall = time.perf_counter() - started
        texts = [p.read_text() for p in logs]
    overview = reads.story_overview(engine)
    mine = overview[overview["story_id"].isin(ids)]
    books = instance.fetch_materializations(dg.AssetKey("storybook"), limit=10 * stories).records
    return {
        "workers": workers,
        "stories": stories,
        "runs": len(chunks),
        "wall_s": round(wall, 2),
        "runs_ok": all(results),
        "steps_per_worker": [
            len(re.findall(r"Task execute_plan\[.*\] received", t)) for t in texts
        ],
        "succeeded": int((mine["status"] == "succeeded").sum()),
        "books_per_story": sorted(
            {sid: sum(r.partition_key == sid for r in books) for sid in ids}.values()
        ),
    }


def run_main(start: str, end: str, config: str) -> None:
    """One chunk's run of storybook_celery_job (its step goes to the Celery queue)."""
    import dagster as dg

    from storygen_dagster.defs.partitions import RANGE_END, RANGE_START
    from storygen_dagster.workers import celery_job_for_workers

    with dg.execute_job(
        dg.reconstructable(celery_job_for_workers),
        instance=dg.DagsterInstance.get(),
        run_config={"execution": {"config": json.loads(config)}},
        tags={RANGE_START: start, RANGE_END: end},
    ) as result:
        sys.exit(0 if result.success else 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_workers")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--stories", type=int, default=8)
    parser.add_argument("--per-run", type=int, default=2)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--backend", default=None, help="default: the broker (rpc:// for AMQP)")
    args = parser.parse_args(argv)
    from bench.shared_limits import scratch_database

    server = os.environ.get("STORYGEN_DATABASE_URL")
    if not server:
        parser.error("set STORYGEN_DATABASE_URL (a server: the bench makes its own database)")
    rows = []
    for n in (int(w) for w in args.workers.split(",")):
        with scratch_database(server) as url:
            rows.append(
                measure(
                    n,
                    args.stories,
                    args.per_run,
                    database_url=url,
                    broker=args.broker,
                    backend=args.backend,
                )
            )
        sys.stdout.write(json.dumps({"figure": "celery_workers", **rows[-1]}) + "\n")
        sys.stdout.flush()
    if len(rows) > 1:
        ratio = round(rows[0]["wall_s"] / rows[-1]["wall_s"], 2)
        sys.stdout.write(json.dumps({"figure": "celery_speedup", "ratio": ratio}) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        run_main(*sys.argv[2:5])
    else:
        main()
