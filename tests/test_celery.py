"""The Celery executor for real: dagster-celery worker processes on the machine's Redis (or
RabbitMQ) run the steps; runs are orchestrated here against a shared Postgres instance. One
worker runs a story's step; two workers share a chunked backfill's runs."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import redis
import yaml

from bench.celery_workers import measure
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.instance import dagster_yaml
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.workers import celery_job_for_workers

REDIS = "redis://127.0.0.1:6379/11"


def _redis_up() -> bool:
    try:
        return redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
@pytest.mark.timeout(240)
def test_story_steps_run_on_a_celery_worker(tmp_path, database_url, engine, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(database_url)))
    celery_config = {"broker": REDIS, "backend": REDIS}
    (tmp_path / "celery.yaml").write_text(yaml.safe_dump({"execution": {"config": celery_config}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_HOME=str(tmp_path / "sg"),
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
    )
    for key, value in env.items():
        if key.startswith(("STORYGEN_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    log = open(tmp_path / "worker.log", "w")  # closed in finally
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-celery")),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(tmp_path / "celery.yaml"),
            "-l",
            "info",
            "--",
            "--concurrency",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        repo.register_request(
            engine, "celery-1", StoryRequest(story_id="celery-1", age=4, scene_count=3), "test"
        )
        instance = dg.DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions("stories", ["celery-1"])
        time.sleep(3)  # let the worker connect before the first task is sent
        run_config = {"execution": {"config": {**celery_config}}}
        with dg.execute_job(
            dg.reconstructable(celery_job_for_workers),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": "celery-1"},
        ) as result:
            assert result.success, (tmp_path / "worker.log").read_text()[-3000:]
        row = reads.story_overview(engine, "celery-1").iloc[0]
        assert row["status"] == "succeeded" and row["book"].endswith(".html")
        worker_log = (tmp_path / "worker.log").read_text()
        assert "execute_plan" in worker_log and "succeeded" in worker_log
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("broker", "backend"),
    [
        pytest.param("redis://127.0.0.1:6379/13", None, id="redis"),
        pytest.param("amqp://guest:guest@127.0.0.1:5672//", "rpc://", id="rabbitmq"),
    ],
)
@pytest.mark.timeout(420)
def test_two_celery_workers_share_one_chunked_backfill(broker, backend, database_url):
    if broker.startswith("redis") and not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    if broker.startswith("amqp") and not _rabbit_up():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    # 8 stories in runs of 2: 4 runs of one step each, launched together; two workers
    # (`dagster-celery worker start`, one step at a time each) take them from the queue.
    m = measure(2, 8, 2, database_url=database_url, broker=broker, backend=backend)
    assert m["runs"] == 4 and m["runs_ok"], m
    assert all(n > 0 for n in m["steps_per_worker"]), m  # both workers took work
    assert sum(m["steps_per_worker"]) == 4, m  # every step ran once
    assert m["succeeded"] == 8 and m["books_per_story"] == [1] * 8, m
