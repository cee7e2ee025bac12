"""Recovery after a hard kill, end to end: `storygen dev` on the machine's Postgres, real HTTP
providers pointed at the loopback fake (each call takes a while, so runs are in flight), 12
requests inserted with SQL. The whole process group (webserver, daemon, code server, run
workers) is SIGKILLed while requests are queued and provider calls are in flight (and, in the
issue's full scenario, a second time while a run is STARTING); after the last restart every
request must succeed with one successful run per story, no two runs of a story side by side,
and no provider call the cache had stored made again."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from storygen_dagster.recovery import RECOVERED_TAG
from storygen_dagster.storage import requests as queue
from tests import dev_process
from tests.dev_process import free_port, hard_kill, start_dev, stop, wait_http
from tests.fakes.provider_server import FakeProvider

# The scenario is 12 requests killed twice (STORYGEN_TEST_KILL_STORIES=12
# STORYGEN_TEST_KILLS=2); 6 requests and one kill by default keep the test's wall time down on a
# 2-core machine (every life starts storygen dev again, every run boots its own Python worker).
# The one kill lands mid provider call; the second kill's moment (a run STARTING, its worker
# booting) is the same sweep of runs whose process is gone (tests/test_recovery.py ends a
# STARTING run in process).
STORIES = int(os.environ.get("STORYGEN_TEST_KILL_STORIES", "6"))
KILLS = int(os.environ.get("STORYGEN_TEST_KILLS", "1"))
KEY = "sk-kill-test-0123456789"
NAMES = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]


def dev_env(database_url: str, home: Path, fake_url: str) -> dict[str, str]:
    return dev_process.dev_env(
        database_url,
        home,
        # One run per request: the assertions below follow each story's runs (chunked runs are
        # tests/test_backfill_chunks.py's and test_automation's).
        STORYGEN_STORIES_PER_RUN="1",
        # A launch lost between the sensor's evaluation and the daemon's reservation is
        # retried (same run key) after this instead of 5 minutes.
        STORYGEN_REQUEST_LAUNCH_GRACE_S="30",
        STORYGEN_LLM_PROVIDER="openai",
        STORYGEN_LLM_BASE_URL=fake_url,
        STORYGEN_LLM_API_KEY=KEY,
        STORYGEN_LLM_MODEL="kill-chat",
        STORYGEN_IMAGE_PROVIDER="together",
        STORYGEN_IMAGE_BASE_URL=fake_url,
        STORYGEN_IMAGE_API_KEY=KEY,
        STORYGEN_IMAGE_MODEL="kill-flux",
        STORYGEN_LLM_RPM="100000",
        STORYGEN_IMAGE_RPM="100000",
        STORYGEN_MODEL_PRICES=json.dumps(
            {
                "kill-chat": {"input_per_mtok": 0.01, "output_per_mtok": 0.01},
                "kill-flux": {"per_megapixel": 0.0001},
            }
        ),
        STORYGEN_RETRY_BACKOFF_S="0.05",
        STORYGEN_RETRY_BACKOFF_MAX_S="0.2",
    )


def insert_requests(engine: sa.Engine, count: int, prefix: str = "kill") -> list[str]:
    ids = [f"{prefix}-{i:02d}" for i in range(count)]
    for i, sid in enumerate(ids):
        # Distinct children: no two stories send the same provider request.
        payload = {"child_name": NAMES[i % len(NAMES)] + str(i), "age": 3 + i % 4}
        queue.enqueue(engine, {**payload, "scene_count": 3}, story_id=sid, requested_by="test")
    return ids


def statuses(engine: sa.Engine) -> dict[str, str]:
    return {r["story_id"]: r["status"] for r in queue.request_rows(engine)}


def wait_for(what: str, check, timeout: float, proc=None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"storygen dev exited ({proc.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.05)


def canon(body) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def stored_calls(engine: sa.Engine) -> set[str]:
    """Requests the call cache can answer (succeeded rows of the provider_calls ledger)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select request from provider_calls where status = 'succeeded'")
        ).scalars()
        return {canon(r) for r in rows}


def run_statuses(engine: sa.Engine) -> list[str]:
    """Statuses of the Dagster runs (the instance lives in the same database)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text("select status from runs")).scalars())


@pytest.mark.timeout(1500)
def test_dev_killed_mid_flight_still_finishes_every_request(tmp_path, database_url, engine):
    log_path = tmp_path / "dev.log"
    ids = insert_requests(engine, STORIES)
    restarts: list[float] = []  # monotonic times of each restart (lives 1..)
    stored_at_kill: list[set[str]] = []
    with FakeProvider(api_key=KEY) as fake, open(log_path, "w") as log:
        fake.delay_s = 0.5  # every call takes a while: the first kill lands mid-call
        fake.reuse_images = True
        env = dev_env(database_url, tmp_path / "home", fake.url)

        def waiting() -> bool:
            return any(s in ("pending", "queued") for s in statuses(engine).values())

        for life in range(KILLS + 1):
            if life:
                restarts.append(time.monotonic())
            seen_before = fake.count()
            port = free_port()
            proc = start_dev(env, port, log)
            try:
                wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=240)
                if life == KILLS:
                    wait_for(
                        "every request to succeed",
                        lambda: set(statuses(engine).values()) == {"succeeded"},
                        timeout=900,
                        proc=proc,
                        log=log_path,
                    )
                    break
                if life == 0:
                    # Provider calls of this life in flight while other requests wait.
                    def moment(seen_before=seen_before) -> bool:
                        return fake.count() > seen_before and fake.in_flight > 0 and waiting()
                else:
                    # The symptom: a run of this life dequeued (STARTING, its worker
                    # booting) while other requests wait.
                    def moment() -> bool:
                        return "STARTING" in run_statuses(engine) and waiting()

                wait_for(f"kill moment {life + 1}", moment, timeout=600, proc=proc, log=log_path)
                hard_kill(proc)
                stored_at_kill.append(stored_calls(engine))
            finally:
                stop(proc)
        recovered_in = time.monotonic() - restarts[-1]
    print(f"\nlast restart -> {STORIES} requests succeeded: {recovered_in:.0f} s")

    # Every request succeeded, every story has its book.
    rows = {r["story_id"]: r for r in queue.request_rows(engine)}
    assert {sid: r["status"] for sid, r in rows.items()} == dict.fromkeys(ids, "succeeded")
    assert max(r["attempts"] for r in rows.values()) >= 2  # the kills did cut runs short
    with engine.connect() as conn:
        books = dict(
            conn.execute(sa.text("select story_id, book_uri from stories where status='succeeded'"))
            .tuples()
            .all()
        )
    assert sorted(books) == ids and all(Path(uri).exists() for uri in books.values())

    # One successful run per story, never two runs of a story side by side, no Dagster retry
    # beside the reconciler's attempts, and the runs the kills left behind were ended.
    with dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster")) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(job_name="storybook_job"))
    by_story = defaultdict(list)
    for rec in records:
        by_story[rec.dagster_run.tags["dagster/partition"]].append(rec)
    ok = {
        sid: [r for r in recs if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
        for sid, recs in by_story.items()
    }
    assert {sid: len(runs) for sid, runs in ok.items()} == dict.fromkeys(ids, 1)
    for recs in by_story.values():
        recs.sort(key=lambda r: r.create_timestamp)
        assert all(r.dagster_run.is_finished for r in recs)
        for before, after in itertools.pairwise(recs):
            assert before.end_time <= after.create_timestamp.timestamp()
    assert not [r for r in records if "dagster/parent_run_id" in r.dagster_run.tags]
    recovered = [r for r in records if RECOVERED_TAG in r.dagster_run.tags]
    assert len(recovered) >= KILLS

    # No provider call paid twice: within one life no request is sent twice, and after a
    # kill no request is sent that the cache had stored before it. (A call in flight at the
    # kill was never answered to us: it is sent again, and counted below.)
    life_of = lambda at: sum(1 for r in restarts if r < at)  # noqa: E731
    sent = defaultdict(list)
    for seen in list(fake.seen):
        sent[canon(seen.body)].append(life_of(seen.at))
    for body, lives in sent.items():
        assert len(lives) == len(set(lives)), f"sent twice in one life: {body[:200]}"
        for life in lives:
            assert life == 0 or body not in stored_at_kill[life - 1], f"paid again: {body[:200]}"
    assert stored_calls(engine) <= set(sent)  # the ledger and the fake see the same requests
    resent = sum(len(lives) - 1 for lives in sent.values())
    print(f"\n{fake.count()} provider calls, {len(sent)} distinct, {resent} re-sent after a kill")
