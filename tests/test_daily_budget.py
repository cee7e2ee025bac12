"""STORYGEN_MAX_COST_PER_DAY_USD: two worker processes paying at once never take the day's
spend past the cap (one advisory lock over the ledger sum and the calls in flight), refusals
name the setting, and yesterday's spend does not count today."""

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.storage import daily_budget, request_outcomes
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage.call_cache import CallRecord, record
from tests.dev_process import REPO
from tests.fakes.provider_server import FakeProvider

KEY = "sk-budget-0123"


def test_two_processes_stay_within_the_daily_budget(database_url, engine):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_MAX_COST_PER_DAY_USD="1.0",
        STORYGEN_MAX_CONCURRENCY="8",
    )
    with FakeProvider(api_key=KEY) as fake:
        fake.delay_s = 0.05  # calls of both processes overlap
        worker = [sys.executable, "-m", "tests.fakes.budget_worker", fake.url, KEY, "20", "0.05"]
        procs = [
            subprocess.Popen(worker, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [json.loads(p.communicate(timeout=180)[0].splitlines()[-1]) for p in procs]
        sent = fake.count("moderations")
    # 40 calls of $0.05 wanted, $1.00 a day allowed: exactly 20 paid, whoever paid them.
    assert sum(o["paid"] for o in outs) == 20 == sent, outs
    assert sum(o["refused"] for o in outs) == 20, outs
    reason = next(o["reason"] for o in outs if o["reason"])
    assert "STORYGEN_MAX_COST_PER_DAY_USD=$1.0000" in reason and "resumes tomorrow" in reason
    assert daily_budget.is_budget_stop(reason)  # what keeps the request's attempts
    with engine.connect() as conn:
        assert daily_budget.spent_today(conn) == 1.0
        assert conn.execute(sa.text("select count(*) from budget_holds")).scalar() == 0


def test_yesterdays_spend_leaves_today_free(engine):
    rec = CallRecord("k1", "p", "m", "e", {}, "succeeded", story_id="s", cost_usd=0.9)
    record(engine, rec)
    with engine.begin() as conn:
        conn.execute(sa.text("update provider_calls set created_at = now() - interval '1 day'"))
    hold_id, committed = daily_budget.hold(engine, 1.0, 0.5)
    assert hold_id is not None and committed == 0.0
    refused, committed = daily_budget.hold(engine, 1.0, 0.6)  # 0.5 of today is held
    assert refused is None and committed == 0.5
    daily_budget.release(engine, hold_id)
    assert daily_budget.hold(engine, 1.0, 0.6)[0] is not None


def test_a_story_stopped_by_the_daily_budget_keeps_its_requests_attempts(engine):
    # Two requests on their last attempt (3 of 3) whose runs ended with the story failed: the
    # one stopped by the day's budget stays eligible for the next night, the other does not.
    stop = (
        "structured_story: BudgetExceeded: daily budget reached: $1.0000 spent or in flight"
        " today (UTC) + this structured_story call up to $0.0100 > "
        "STORYGEN_MAX_COST_PER_DAY_USD=$1.0000; story budget-1 stops here and resumes tomorrow"
    )
    ids = {}
    for sid, error in (("budget-1", stop), ("broken-1", "structured_story: the model said no")):
        repo.register_request(engine, sid, StoryRequest(story_id=sid, age=4), "t")
        ids[sid] = queue.enqueue(engine, {"age": 4}, story_id=sid, requested_by="t")
        with engine.begin() as conn:
            conn.execute(
                sa.text("update stories set status = 'failed', error = :e where story_id = :s"),
                {"e": error, "s": sid},
            )
            conn.execute(
                sa.text(
                    "update story_requests set status = 'running', attempts = 3,"
                    " run_id = :r where id = :i"
                ),
                {"r": f"run-{sid}", "i": ids[sid]},
            )
        request_outcomes.finish_from_stories(
            engine, [sid], [f"run-{sid}"], "step failed", max_attempts=3
        )
    rows = {r["story_id"]: r for r in queue.request_rows(engine)}
    assert rows["budget-1"]["status"] == rows["broken-1"]["status"] == "failed"
    assert rows["budget-1"]["attempts"] == 2 and "daily budget reached" in rows["budget-1"]["error"]
    assert rows["broken-1"]["attempts"] == 3
    retry = queue.read_requests(engine, statuses=["pending", "failed"], limit=10, max_attempts=3)
    assert [r.story_id for r in retry] == ["budget-1"]  # what the nightly schedule relaunches
