"""Recovery time after a hard kill of `storygen dev`, measured (not a test: it prints figures).

    STORYGEN_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m tests.measure_recovery --kills 3 --stories 4

Each kill gets a fresh database: `--stories` requests (4 = the dev instance's concurrent runs,
so every one can be in flight), `storygen dev` started, SIGKILL of its whole process group
once a run has started and provider calls are in flight at the loopback fake (0.5 s per
call), restart. Reported per kill: the runs it cut short (STARTING / STARTED); restart → UI
up; restart → each of their stories has a new run STARTED; restart → every request
succeeded. The baseline is the
same batch with no kill, start → every request succeeded. Medians at the end.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storygen_dagster.storage import migrate
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage.db import get_engine
from tests.dev_process import free_port, hard_kill, start_dev, stop, wait_http
from tests.fakes.provider_server import FakeProvider
from tests.test_dev_kill import KEY, dev_env, insert_requests, statuses


def new_database(server_url: str) -> tuple[str, sa.Engine]:
    admin = sa.create_engine(
        make_url(server_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = f"sgmeasure_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url, admin


def drop_database(server_url: str, url: str) -> None:
    get_engine(url).dispose()
    admin = sa.create_engine(
        make_url(server_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{make_url(url).database}" with (force)'))
    admin.dispose()


def wait(check, timeout: float, proc, engine: sa.Engine) -> float:
    start = time.monotonic()
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"storygen dev exited with {proc.returncode}")
        if "failed" in statuses(engine).values():
            raise RuntimeError(f"a request failed: {queue.request_rows(engine)}")
        if time.monotonic() - start > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(0.05)
    return time.monotonic()


def all_succeeded(engine: sa.Engine) -> bool:
    return set(statuses(engine).values()) == {"succeeded"}


def runs(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    """Every storybook run: run id -> (status, story), from the instance's own tables."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select r.run_id, r.status, t.value from runs r join run_tags t"
                " on t.run_id = r.run_id and t.key = 'dagster/partition'"
            )
        ).all()
    return {run_id: (status, story) for run_id, status, story in rows}


def relaunched(engine: sa.Engine, before: dict, orphans: set[str]) -> bool:
    """Every story whose run the kill cut short has a new run that started."""
    started = {
        story
        for run_id, (status, story) in runs(engine).items()
        if run_id not in before and status in ("STARTED", "SUCCESS")
    }
    return orphans <= started


def one(server_url: str, stories: int, kill: bool, log) -> dict[str, float]:
    url, _ = new_database(server_url)
    engine = get_engine(url)
    home = Path(tempfile.mkdtemp(prefix="sgmeasure-"))
    try:
        insert_requests(engine, stories, prefix="m")
        with FakeProvider(api_key=KEY) as fake:
            fake.delay_s, fake.reuse_images = 0.5, True
            env = dev_env(url, home, fake.url)
            port = free_port()
            started = time.monotonic()
            proc = start_dev(env, port, log)
            try:
                wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=300)
                if not kill:
                    done = wait(lambda: all_succeeded(engine), 900, proc, engine)
                    return {"baseline_s": done - started}
                # A run started and provider calls in flight at the fake: then kill.
                wait(
                    lambda: (
                        "STARTED" in {st for st, _ in runs(engine).values()} and fake.in_flight > 0
                    ),
                    900,
                    proc,
                    engine,
                )
                hard_kill(proc)
            finally:
                stop(proc)
            before = runs(engine)
            orphans = {story for st, story in before.values() if st in ("STARTING", "STARTED")}
            restart = time.monotonic()
            port = free_port()
            proc = start_dev(env, port, log)
            try:
                wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=300)
                ready = time.monotonic()
                back = wait(lambda: relaunched(engine, before, orphans), 900, proc, engine)
                done = wait(lambda: all_succeeded(engine), 900, proc, engine)
            finally:
                stop(proc)
        return {
            "ui_up_s": ready - restart,
            "orphans": float(len(orphans)),
            "relaunched_s": back - restart,
            "all_succeeded_s": done - restart,
        }
    finally:
        drop_database(server_url, url)


def main() -> None:
    import os

    parser = argparse.ArgumentParser(prog="python -m tests.measure_recovery")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--stories", type=int, default=4)
    parser.add_argument("--log", default="/tmp/measure_recovery.log")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run with no kill")
    args = parser.parse_args()
    # A plain `kill` still runs the finally blocks that stop storygen dev and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server_url = os.environ["STORYGEN_DATABASE_URL"]
    results = []
    with open(args.log, "w") as log:
        if not args.no_baseline:
            baseline = one(server_url, args.stories, False, log)["baseline_s"]
            print(f"baseline (no kill): start -> all succeeded {baseline:.1f} s", flush=True)
        for i in range(args.kills):
            r = one(server_url, args.stories, True, log)
            results.append(r)
            print(f"kill {i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    for key in ("ui_up_s", "relaunched_s", "all_succeeded_s"):
        values = [r[key] for r in results]
        print(f"median {key}: {statistics.median(values):.1f} (of {values})")


if __name__ == "__main__":
    main()
