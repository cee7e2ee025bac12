"""End to end with the real daemon: `storygen dev` (webserver + daemon) on a fresh instance,
requests inserted with plain SQL, statuses watched until they settle."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from storygen_dagster.storage import requests as queue
from tests.dev_process import REPO, dev_env, free_port, start_dev, stop, wait_http


@pytest.mark.timeout(600)
def test_requests_inserted_by_sql_become_books_via_the_daemon(tmp_path, database_url, engine):
    env = dev_env(database_url, tmp_path / "home")
    port = free_port()
    log = open(tmp_path / "dev.log", "w")  # closed in finally
    proc = start_dev(env, port, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=180)
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
            time.sleep(0.5)
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
        # One owner per instance: a second storygen dev on the same database refuses to start
        # (two daemons would both launch, and both would sweep the other's runs).
        second = subprocess.run(
            [sys.executable, "-m", "storygen_dagster.cli", "dev", "--port", str(free_port())],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert "another storygen dev is running on this instance" in second.stderr
    finally:
        stop(proc)
        log.close()
    assert proc.returncode is not None


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "dev.log").read_text()[-4000:]
