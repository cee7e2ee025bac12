"""Recovery time after a hard kill of `storygen dev`, measured (not a test: it prints figures).

    STORYGEN_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m tests.measure_recovery --kills 3 --stories 4

Each kill gets a fresh database: `--stories` requests (4 = the dev instance's concurrent runs,
so every one is in flight), `storygen dev` started, SIGKILL of its whole process group once
every request's run has started and provider calls are in flight at the loopback fake (0.5 s
per call), restart. Reported per kill: restart → UI up; restart → every unfinished request
in its next attempt's run (STARTED); restart → every request succeeded. The baseline is the
same batch with no kill, start → every request succeeded. Medians at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storygen_dagster.storage import migrate
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


def wait(check, timeout: float, proc) -> float:
    start = time.monotonic()
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"storygen dev exited with {proc.returncode}")
        if time.monotonic() - start > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(0.05)
    return time.monotonic()


def attempts_running(engine: sa.Engine, min_attempts: int) -> bool:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select status, attempts from story_requests")).all()
    return all(s == "succeeded" or (s == "running" and a >= min_attempts) for s, a in rows)


def in_flight(engine: sa.Engine) -> bool:
    """Every request's first run started, at least one not finished."""
    states = set(statuses(engine).values())
    return attempts_running(engine, 1) and "running" in states


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
                    done = wait(lambda: set(statuses(engine).values()) == {"succeeded"}, 900, proc)
                    return {"baseline_s": done - started}
                # Every request's run started, calls in flight at the fake: then kill.
                wait(lambda: in_flight(engine) and fake.in_flight > 0, 900, proc)
                hard_kill(proc)
            finally:
                stop(proc)
            restart = time.monotonic()
            port = free_port()
            proc = start_dev(env, port, log)
            try:
                wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=300)
                ready = time.monotonic()
                relaunched = wait(lambda: attempts_running(engine, 2), 900, proc)
                done = wait(lambda: set(statuses(engine).values()) == {"succeeded"}, 900, proc)
            finally:
                stop(proc)
        return {
            "ui_up_s": ready - restart,
            "relaunched_s": relaunched - restart,
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
    args = parser.parse_args()
    server_url = os.environ["STORYGEN_DATABASE_URL"]
    results = []
    with open(args.log, "w") as log:
        baseline = one(server_url, args.stories, False, log)
        print(f"baseline (no kill): start -> all succeeded {baseline['baseline_s']:.1f} s")
        for i in range(args.kills):
            r = one(server_url, args.stories, True, log)
            results.append(r)
            print(f"kill {i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    for key in ("ui_up_s", "relaunched_s", "all_succeeded_s"):
        values = [r[key] for r in results]
        print(f"median {key}: {statistics.median(values):.1f} (of {values})")


if __name__ == "__main__":
    main()
