"""A UI backfill with the real daemon: `storygen dev` with STORYGEN_STORIES_PER_RUN=3, a
7-story backfill launched through the webserver's GraphQL (what the Materialize dialog sends)
becomes 3 runs (3 + 3 + 1 stories), each one step, and every story is materialized once."""

import collections
import json
import os
import time
import urllib.request

import dagster as dg
import pytest

from storygen_dagster.defs.partitions import RANGE_END, RANGE_START
from storygen_dagster.defs.story.keys import BOOK
from storygen_dagster.defs.story.specs import SPECS
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.storage import repository as repo
from tests.dev_process import free_port, start_dev, stop, wait_http

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def _graphql(port: int, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.timeout(600)
def test_a_ui_backfill_of_7_stories_becomes_3_one_step_runs(tmp_path, database_url, engine):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_HOME=str(tmp_path / "home"),
        STORYGEN_STORIES_PER_RUN="3",
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
    )
    ids = [f"bf-{i}" for i in range(7)]
    for i, sid in enumerate(ids):
        repo.register_request(engine, sid, StoryRequest(story_id=sid, age=3 + i % 4), "test")
    port = free_port()
    log = open(tmp_path / "dev.log", "w")  # closed in finally
    proc = start_dev(env, port, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=180)
        instance = dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster"))
        instance.add_dynamic_partitions("stories", ids)
        assets = [spec.key for spec in SPECS]  # every story asset, as the UI's "all" selects
        params = {
            "partitionNames": ids,
            "assetSelection": [{"path": list(a.path)} for a in assets],
            "fromFailure": False,
        }
        answer = _graphql(port, LAUNCH, {"params": params})["data"]["launchPartitionBackfill"]
        assert answer["__typename"] == "LaunchBackfillSuccess", answer
        backfill_id = answer["backfillId"]
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            done = instance.get_backfill(backfill_id).status.value != "REQUESTED"
            if done and runs and all(r.is_finished for r in runs):
                break
            time.sleep(3)
        log_tail = (tmp_path / "dev.log").read_text()[-3000:]
        assert len(runs) == 3, log_tail
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), log_tail
        spans = sorted((r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs)
        assert spans == [("bf-0", "bf-2"), ("bf-3", "bf-5"), ("bf-6", "bf-6")]
        for run in runs:
            starts = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
            assert [r.event_log_entry.step_key for r in starts] == ["story_assets"]
        books = instance.fetch_materializations(BOOK, limit=100).records
        per_story = collections.Counter(r.partition_key for r in books)
        assert per_story == dict.fromkeys(ids, 1)
    finally:
        stop(proc)
        log.close()
