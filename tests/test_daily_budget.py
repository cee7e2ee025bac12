"""STORYGEN_MAX_COST_PER_DAY_USD: two worker processes paying at once never take the day's
spend past the cap (one advisory lock over the ledger sum and the calls in flight), refusals
name the setting, and yesterday's spend does not count today."""

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from storygen_dagster.storage import daily_budget
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
