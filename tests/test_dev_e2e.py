"""End to end with the real daemon: `storygen dev` (webserver + daemon) on a fresh instance,
requests inserted with plain SQL, statuses watched until they settle."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from storygen_dagster.storage import requests as queue

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"storygen dev exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _start_dev(env, port, log):
    def child_setup():
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell may ignore it

    return subprocess.Popen(
        [sys.executable, "-m", "storygen_dagster.cli", "dev", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=child_setup,
    )


@pytest.mark.timeout(600)
def test_requests_inserted_by_sql_become_books_via_the_daemon(tmp_path, database_url, engine):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_HOME=str(tmp_path / "home"),
        STORYGEN_REQUEST_SENSOR_INTERVAL_S="5",
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
    )
    port = _free_port()
    log = open(tmp_path / "dev.log", "w")  # noqa: SIM115 - closed in finally
    proc = _start_dev(env, port, log)
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=180)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "insert into story_requests (story_id, payload) values"
                    ' (\'sql-1\', \'{"child_name": "Ola", "age": 4, "scene_count": 3}\'),'
                    " (null, '{\"age\": 5}'),"
                    " ('sql-bad', '{\"age\": 12}')"
                )
            )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = {r["story_id"] or r["id"]: r for r in queue.request_rows(engine)}
            if all(r["status"] in ("succeeded", "failed", "rejected") for r in rows.values()):
                break
            time.sleep(3)
        statuses = {k: (r["status"], r["error"]) for k, r in rows.items()}
        assert rows["sql-1"]["status"] == "succeeded", (statuses, _tail(tmp_path))
        assert rows["sql-bad"]["status"] == "rejected" and "age" in rows["sql-bad"]["error"]
        anon = next(r for r in rows.values() if r["story_id"] not in ("sql-1", "sql-bad"))
        assert anon["status"] == "succeeded" and anon["story_id"].startswith("req-")
        assert anon["attempts"] == 1 and anon["run_id"] and not anon["run_id"].startswith("run")
        with engine.connect() as conn:
            books = (
                conn.execute(
                    sa.text(
                        "select story_id from stories"
                        " where status='succeeded' and book_uri is not null"
                        " order by 1"
                    )
                )
                .scalars()
                .all()
            )
        assert books == sorted(["sql-1", anon["story_id"]])
    finally:
        _stop(proc)
        log.close()
    assert proc.returncode is not None


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "dev.log").read_text()[-4000:]
