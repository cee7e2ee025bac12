"""The whole pipeline on real providers aimed at the loopback fake: complete books, zero new
requests on a re-run, new ones with fresh, the ledger, run-level failures and secrets."""

import logging

import dagster as dg
import pytest
import sqlalchemy as sa

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.runner import FRESH_TAG
from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import call_cache, reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.objects import ObjectStore
from tests.fakes.helpers import KEY, image_resource, llm_resource

pytest_plugins = ["tests.fakes.fixtures"]


def _register(engine, ids, **fields):
    # Distinct names: identical requests share cache entries (the key is the request body).
    for sid in ids:
        request = StoryRequest(story_id=sid, child_name=sid.title().replace("-", " "), **fields)
        repo.register_request(engine, sid, request, by="test")


def _statuses(engine, ids):
    frame = reads.story_overview(engine).set_index("story_id")
    return {sid: (frame.at[sid, "status"], frame.at[sid, "error"]) for sid in ids}


def test_books_then_zero_new_requests_then_fresh(
    fake, real_resources, instance, engine, object_root
):
    ids = ["real-1", "real-2"]
    _register(engine, ids, scene_count=3)
    defs = build_definitions(real_resources)
    outcomes = materialize_stories(defs, instance, ids)
    assert all(o.success for o in outcomes)
    assert {s for s, _ in _statuses(engine, ids).values()} == {"succeeded"}
    # 2 stories x (story + profile + style + 3 moments) chat calls, 2 x (sheet + 3) images.
    assert (fake.count("chat"), fake.count("images")) == (12, 8)
    store = ObjectStore(str(object_root))
    for sid in ids:
        row = reads.story_overview(engine, sid).iloc[0]
        assert row["scenes"] == 3 and store.exists(row["book"])
    ledger = call_cache.ledger(engine)
    assert len(ledger) == 20 and set(ledger["status"]) == {"succeeded"}
    assert (ledger["cost_usd"].astype(float) > 0).all()
    chat = ledger[ledger["endpoint"] == "chat/completions"]
    assert (chat["prompt_tokens"] > 0).all() and (chat["completion_tokens"] > 0).all()
    # Real numbers reach the provenance columns.
    with engine.connect() as conn:
        prov = conn.execute(
            sa.text("select provenance from stories where story_id = 'real-1'")
        ).scalar_one()
        scene_prov = conn.execute(
            sa.text("select provenance from scenes where story_id = 'real-1' order by 1 limit 1")
        ).scalar_one()
    assert prov["structured_story"]["cost_usd"] > 0
    assert prov["structured_story"]["completion_tokens"] > 0
    assert scene_prov["scene_images"]["cost_usd"] > 0 and not scene_prov["scene_images"]["cached"]

    seen = fake.count()
    again = materialize_stories(defs, instance, ids)
    assert all(o.success for o in again)
    assert fake.count() == seen  # a re-run makes zero new provider requests
    mats = (
        instance.fetch_materializations(dg.AssetKey("scene_moments"), limit=1)
        .records[0]
        .asset_materialization
    )
    # Per story: its 3 scene moments came from the cache.
    assert mats.metadata["cached_calls"].value == mats.metadata["calls"].value == 3

    fresh = materialize_stories(defs, instance, ids[:1], tags={FRESH_TAG: "true"})
    assert all(o.success for o in fresh)
    assert fake.count("chat") == 12 + 6 and fake.count("images") == 8 + 4
    assert len(call_cache.ledger(engine)) == 20  # one row per distinct request


def test_402_fails_the_whole_run_fast(fake, real_resources, instance, engine, provider_env):
    provider_env.setenv("STORYGEN_MAX_CONCURRENCY", "1")
    fake.queue("chat", *[{"status": 402, "body": {"error": "out of credits"}}] * 10)
    ids = ["broke-1", "broke-2", "broke-3"]
    _register(engine, ids)
    outcomes = materialize_stories(build_definitions(real_resources), instance, ids)
    assert not any(o.success for o in outcomes)
    assert fake.count("chat") == 1 and fake.count("images") == 0
    for status, error in _statuses(engine, ids).values():
        assert status == "failed" and "402" in error and "out of credits" in error
    assert not instance.get_materialized_partitions(dg.AssetKey("visual_profile"))


def test_over_budget_story_fails_with_a_clear_reason(
    fake, real_resources, instance, engine, provider_env
):
    provider_env.setenv("STORYGEN_MAX_COST_PER_STORY_USD", "0.000001")
    _register(engine, ["pricey-1"])
    outcomes = materialize_stories(build_definitions(real_resources), instance, ["pricey-1"])
    assert not outcomes[0].success
    status, error = _statuses(engine, ["pricey-1"])["pricey-1"]
    assert status == "failed" and "budget exceeded" in error
    assert "STORYGEN_MAX_COST_PER_STORY_USD" in error and fake.count() == 0


def test_missing_key_fails_before_any_request(fake, resources, instance, engine, provider_env):
    _register(engine, ["nokey-1"])
    instance.add_dynamic_partitions("stories", ["nokey-1"])
    keyless = {**resources, "llm": llm_resource(fake, api_key=None)}
    with pytest.raises(dg.DagsterResourceFunctionError) as err:
        dg.materialize(
            [story_assets],
            partition_key="nokey-1",
            instance=instance,
            resources=keyless,
            selection=[dg.AssetKey("structured_story")],
        )
    assert "needs STORYGEN_LLM_API_KEY" in str(err.value.__cause__)
    assert fake.count() == 0


def test_api_key_never_reaches_logs_metadata_or_the_database(
    fake, real_resources, instance, engine, caplog
):
    caplog.set_level(logging.DEBUG)
    # A provider that echoes the key in its error body (some do, partially masked).
    fake.queue("images", {"status": 401, "body": {"error": {"message": f"bad key {KEY}"}}})
    _register(engine, ["secret-1"], scene_count=3)
    outcomes = materialize_stories(build_definitions(real_resources), instance, ["secret-1"])
    assert not outcomes[0].success and fake.count("chat") == 6
    assert all(s.auth == f"Bearer {KEY}" for s in fake.seen)  # the key was really used
    status, error = _statuses(engine, ["secret-1"])["secret-1"]
    assert status == "failed" and "401" in error and "***" in error
    texts = [caplog.text]
    for record in instance.get_run_records():
        texts += [str(e) for e in instance.all_logs(record.dagster_run.run_id)]
        texts.append(str(record.dagster_run))
    with engine.connect() as conn:
        for table in ("stories", "scenes", "provider_calls"):
            texts += [r[0] for r in conn.execute(sa.text(f"select t::text from {table} t"))]
    assert len(texts) > 20
    assert not [t for t in texts if KEY in t]


def test_openai_image_provider_selected_by_setting(fake, resources, instance, engine, provider_env):
    res = {
        **resources,
        "llm": llm_resource(fake),
        "images": image_resource(fake, provider="openai"),
    }
    _register(engine, ["oa-1"], scene_count=3)
    assert materialize_stories(build_definitions(res), instance, ["oa-1"])[0].success
    assert all("size" in s.body for s in fake.seen if s.kind == "images")


def test_one_story_failing_at_its_images_leaves_the_batch_built(
    fake, real_resources, instance, engine, provider_env
):
    """A 4xx on one image fails that story alone: the others get every asset and a book, and
    the failed story keeps what it had built and shows failed only from its pictures on (the
    first image request of a batch is always a story's character sheet)."""
    ids = ["iso-1", "iso-2", "iso-3"]
    _register(engine, ids, scene_count=3)
    fake.queue("images", {"status": 400, "body": {"error": {"message": "prompt rejected"}}})
    [outcome] = materialize_stories(build_definitions(real_resources), instance, ids)
    assert not outcome.success
    statuses = _statuses(engine, ids)
    failed = [sid for sid, (status, _) in statuses.items() if status == "failed"]
    assert len(failed) == 1 and "prompt rejected" in statuses[failed[0]][1]
    assert "character_sheet" in statuses[failed[0]][1]
    assert failed[0] not in instance.get_materialized_partitions(dg.AssetKey("scene_images"))
    ok = sorted(set(ids) - set(failed))
    assert {statuses[sid][0] for sid in ok} == {"succeeded"}
    book = dg.AssetKey("storybook")
    assert sorted(instance.get_materialized_partitions(book)) == ok
    # Upstream of the failure the story is materialized like the others.
    assert set(ids) <= set(instance.get_materialized_partitions(dg.AssetKey("scene_moments")))
    run = instance.get_run_by_id(outcome.run_id)
    assert run.is_failure


def test_a_failed_story_is_recorded_and_told_while_the_batch_runs(
    fake, real_resources, instance, engine, provider_env
):
    """The first chat call is refused (400, not retried): that story stops at once. The other
    story's first call takes 3 s. Its failure is in Postgres and in the event log as one ERROR
    line before the other story has built anything, not only when the step ends."""
    from storygen_dagster.defs.story.failures import parse_story_failed

    ids = ["now-1", "now-2"]
    _register(engine, ids, scene_count=3)
    fake.queue(
        "chat",
        {"status": 400, "body": {"error": {"message": "model refused the request"}}, "sleep": 0},
        {"sleep": 3},
    )
    [outcome] = materialize_stories(build_definitions(real_resources), instance, ids)
    assert not outcome.success
    records = instance.get_records_for_run(outcome.run_id).records
    told = [
        (r.storage_id, parse_story_failed(r.event_log_entry.user_message))
        for r in records
        if r.event_log_entry.dagster_event is None
    ]
    told = [(at, found) for at, found in told if found]
    assert len(told) == 1, told
    told_at, (doomed, status, error) = told[0]
    assert status == "failed" and "model refused the request" in error
    assert _statuses(engine, ids)[doomed] == ("failed", error)
    [survivor] = set(ids) - {doomed}
    built = [
        r.storage_id
        for r in records
        if (m := r.event_log_entry.asset_materialization) is not None and m.partition == survivor
    ]
    assert len(built) == 9 and told_at < min(built)  # all nine assets, after the failure
