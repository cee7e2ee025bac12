"""The review gate end to end with the real daemon (`storygen dev`): a request inserted with SQL
waits for review having made no picture; `storygen approve` (a separate process) is the only
action, and the book appears (story_review_sensor launches the run)."""

import logging
import os
import time

import pytest
import sqlalchemy as sa

from storygen_dagster.storage import requests as queue
from tests.conftest import storygen
from tests.dev_process import REPO, free_port, start_dev, stop, wait_http

log = logging.getLogger(__name__)


def _wait(what, predicate, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _one(engine, sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one_or_none()


@pytest.mark.timeout(600)
def test_approval_alone_turns_a_held_request_into_a_book_via_the_daemon(
    tmp_path, database_url, engine
):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_HOME=str(tmp_path / "home"),
        STORYGEN_REQUEST_SENSOR_INTERVAL_S="5",
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
        STORYGEN_REVIEW="story",
    )
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
            time.sleep(12)  # two more sensor intervals: still nothing is drawn
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
