"""The review gate end to end with the real daemon (`storygen dev`): a request inserted with SQL
waits for review having made no picture; `storygen approve` (a separate process) is the only
action, and the book appears (story_review_sensor launches the run)."""

import logging
import time

import pytest
import sqlalchemy as sa

from storygen_dagster.storage import requests as queue
from tests.conftest import storygen
from tests.dev_process import REPO, dev_env, free_port, start_dev, stop, wait_http

log = logging.getLogger(__name__)


def _wait(what, predicate, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _one(engine, sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one_or_none()


def _ticks_after(engine, tick_id: int, sensor: str) -> int:
    """Finished ticks of `sensor` after tick `tick_id` (the instance is in the same database)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "select count(*) from job_ticks where id > :id and status <> 'STARTED'"
                " and tick_body like :name"
            ),
            {"id": tick_id, "name": f'%"{sensor}"%'},
        ).scalar_one()


@pytest.mark.timeout(600)
def test_approval_alone_turns_a_held_request_into_a_book_via_the_daemon(
    tmp_path, database_url, engine
):
    env = dev_env(database_url, tmp_path / "home", STORYGEN_REVIEW="story")
    port = free_port()
    with open(tmp_path / "dev.log", "w") as dev_log:
        proc = start_dev(env, port, dev_log)
        try:
            wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=180)
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "insert into story_requests (story_id, payload) values"
                        ' (\'rev-1\', \'{"child_name": "Ola", "age": 4, "scene_count": 3}\')'
                    )
                )
            started = time.monotonic()
            _wait(
                "the request to wait for review",
                lambda: queue.request_rows(engine)[0]["status"] == "awaiting_review",
            )
            held_s = time.monotonic() - started
            assert _one(engine, "select status from stories") == "awaiting_review"
            assert _one(engine, "select count(*) from scenes where image_uri is not null") == 0
            # Two more evaluations of each sensor that could launch a run: still nothing drawn.
            last_tick = _one(engine, "select coalesce(max(id), 0) from job_ticks")
            _wait(
                "two more ticks of the request and review sensors",
                lambda: all(
                    _ticks_after(engine, last_tick, name) >= 2
                    for name in ("story_request_sensor", "story_review_sensor")
                ),
                timeout=120,
            )
            assert _one(engine, "select count(*) from scenes where image_uri is not null") == 0

            approved = storygen(["approve", "rev-1", "--by", "ruth"], env, REPO)
            assert approved.returncode == 0, approved.stderr
            decided = time.monotonic()
            _wait(
                "the book",
                lambda: queue.request_rows(engine)[0]["status"] == "succeeded",
            )
            book_s = time.monotonic() - decided
            assert _one(engine, "select status from stories") == "succeeded"
            assert _one(engine, "select book_uri from stories")
            log.info("request -> awaiting_review %.1f s; approve -> book %.1f s", held_s, book_s)
        finally:
            stop(proc)
    assert proc.returncode is not None
