"""dbt_metadata on real Postgres after a real pipeline run, through Dagster (dagster-dbt)."""

import json
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_dbt import DbtCliResource
from sqlalchemy.engine import make_url

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.dbt.project import apply_dbt_env, dbt_executable, dbt_project
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.edits import edit_story

IDS = ["dbt-a", "dbt-b", "dbt-c"]


@pytest.fixture(scope="module")
def built_copy(make_database):
    """The database the first test of this module built (three stories, an edit, a ledger row,
    the analytics job): a pipeline run and a dbt build are most of this module's time, so the
    other tests start from a copy of it instead of building again."""
    saved: dict[str, str] = {}
    yield saved
    if saved:
        make_database.drop_now(saved["name"])


def _build(database_url, engine, resources, instance) -> None:
    defs = build_definitions(
        {
            **resources,
            "dbt": DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable()),
        }
    )
    for i, sid in enumerate(IDS):
        repo.register_request(
            engine,
            sid,
            StoryRequest(
                story_id=sid,
                age=4 + i % 2,
                scene_count=3 + i,
                value_to_teach="sharing" if i < 2 else "honesty",
            ),
            "t",
        )
    assert all(o.success for o in materialize_stories(defs, instance, IDS))
    edit_story(engine, "dbt-b", by="ana", scene_number=2, moment="a kite over the hill")
    with engine.begin() as conn:
        # A ledger row with a known price, as a real provider would have written it.
        conn.execute(
            sa.text(
                "insert into provider_calls (cache_key, provider, model, endpoint, story_id, asset,"
                " request, response,"
                " status, attempts, latency_ms, prompt_tokens, completion_tokens, cost_usd)"
                " values ('k-dbt-a', 'openai', 'm', '/chat/completions', 'dbt-a',"
                " 'structured_story', '{}', '{}',"
                " 'succeeded', 1, 250, 120, 380, 0.0125)"
            )
        )
        # A vision model's review of dbt-a's scene 1 that failed no_text, then its redraw's
        # review that passed, with the calls' ledger rows (as vision_chat.py writes them).
        for rnd, passed in ((0, False), (1, True)):
            conn.execute(
                sa.text(
                    "insert into picture_reviews (story_id, scene_number, round, image_sha256,"
                    " passed, safety_failed, verdicts, reviewer, model, updated_by, cost_usd)"
                    " values ('dbt-a', 1, :r, :sha, :p, false, cast(:v as jsonb), 'openai',"
                    " 'm-vision', 'run:x', 0.002)"
                ),
                {
                    "r": rnd,
                    "sha": f"sha-{rnd}",
                    "p": passed,
                    "v": json.dumps(
                        {
                            "no_text": {"passed": passed, "reason": "r"},
                            "safe_for_age": {"passed": True, "reason": "r"},
                        }
                    ),
                },
            )
            conn.execute(
                sa.text(
                    "insert into provider_calls (cache_key, provider, model, endpoint, story_id,"
                    " asset, request, response, status, attempts, prompt_tokens,"
                    " completion_tokens, cost_usd) values (:k, 'openai', 'm-vision',"
                    " 'chat/completions', 'dbt-a', 'illustrations_reviewed', '{}', '{}',"
                    " 'succeeded', 1, 1500, 100, 0.002)"
                ),
                {"k": f"k-review-{rnd}"},
            )
    apply_dbt_env(database_url)
    result = defs.resolve_job_def("analytics_job").execute_in_process(instance=instance)
    assert result.success


@pytest.fixture()
def built(database_url, engine, resources, instance, monkeypatch, make_database, built_copy):
    """This test's own database holds the built stories and the analytics models."""
    for key in ("HOST", "PORT", "USER", "PASSWORD", "DBNAME"):
        monkeypatch.delenv(f"STORYGEN_DBT_{key}", raising=False)
    name = make_url(database_url).database
    if built_copy:
        # Same name, the built content: this test's engine and resources stay valid.
        engine.dispose()
        make_database.execute(f'drop database "{name}" with (force)')
        make_database.execute(f'create database "{name}" template "{built_copy["name"]}"')
        apply_dbt_env(database_url)
    else:
        _build(database_url, engine, resources, instance)
        engine.dispose()  # a template database has no open connections
        copy = make_database(template=name)
        built_copy["name"] = make_url(copy).database
    return IDS


def test_fct_stories_has_one_correct_row_per_story(built, engine):
    with engine.connect() as conn:
        rows = (
            conn.execute(sa.text("select * from analytics.fct_stories order by story_id"))
            .mappings()
            .all()
        )
        ledger = dict(
            conn.execute(
                sa.text("select story_id, sum(cost_usd) from provider_calls group by story_id")
            ).all()
        )
        scenes = conn.execute(sa.text("select count(*) from analytics.fct_scenes")).scalar()
    assert [r["story_id"] for r in rows] == built
    assert [r["scene_count"] for r in rows] == [3, 4, 5]
    assert scenes == 12
    for row in rows:
        assert row["status"] == "succeeded" and row["title"]
        assert float(row["total_cost_usd"]) == pytest.approx(float(ledger.get(row["story_id"], 0)))
        assert "structured_story:v1" in row["prompt_versions"]
        assert row["seconds_to_book"] is not None and row["seconds_to_book"] >= 0
    assert rows[0]["total_tokens"] >= 500


def test_aggregates(built, engine):
    with engine.connect() as conn:
        values = conn.execute(
            sa.text(
                "select value_to_teach, sum(stories) from analytics.agg_values_taught"
                " group by 1 order by 1"
            )
        ).all()
        daily = conn.execute(
            sa.text(
                "select sum(stories_requested), sum(succeeded), sum(failed)"
                " from analytics.agg_daily_generation"
            )
        ).one()
    assert values == [("honesty", 1), ("sharing", 2)]
    assert tuple(daily) == (3, 3, 0)


def test_picture_review_pass_rates_redraws_and_cost_by_model(built, engine):
    with engine.connect() as conn:
        rates = conn.execute(
            sa.text(
                "select model, criterion, judged, passed, pass_rate"
                " from analytics.agg_picture_review_criteria order by 1, 2"
            )
        ).all()
        stories = conn.execute(
            sa.text(
                "select story_id, model, pictures, redraws, flagged, review_calls, review_cost_usd"
                " from analytics.agg_picture_reviews order by 1, 2"
            )
        ).all()
    offline = {r[1]: r[2:] for r in rates if r[0] == "storygen-offline-reviewer-v1"}
    # Every scene of the three stories (3 + 4 + 5) judged offline, every criterion passing.
    assert len(offline) == 5 and all(v == (12, 12, 1) for v in offline.values())
    vision = {r[1]: r[2:] for r in rates if r[0] == "m-vision"}
    assert vision == {"no_text": (2, 1, 0.5), "safe_for_age": (2, 2, 1)}
    by_story = {(r[0], r[1]): r[2:] for r in stories}
    assert by_story[("dbt-a", "m-vision")] == (1, 1, 0, 2, Decimal("0.004"))
    assert by_story[("dbt-c", "storygen-offline-reviewer-v1")] == (5, 0, 0, 0, 0)


def test_singular_test_catches_a_succeeded_story_without_images(
    built, engine, database_url, instance
):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update scenes set image_uri = null where story_id = 'dbt-b' and scene_number = 2"
            )
        )
    dbt = DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())
    apply_dbt_env(database_url)
    invocation = dbt.cli(
        ["test", "--select", "assert_succeeded_stories_have_all_images"], raise_on_error=False
    )
    events = list(invocation.stream_raw_events())
    assert not invocation.is_successful()
    assert any("assert_succeeded_stories_have_all_images" in str(e.raw_event) for e in events)


def test_lineage_runs_from_story_assets_into_dbt_models():
    from storygen_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    stg_stories = next(k for k in graph.get_all_asset_keys() if k.path[-1] == "stg_stories")
    stg_scenes = next(k for k in graph.get_all_asset_keys() if k.path[-1] == "stg_scenes")
    assert dg.AssetKey("storybook") in graph.get(stg_stories).parent_keys
    assert dg.AssetKey("scene_images") in graph.get(stg_scenes).parent_keys
    fct = next(k for k in graph.get_all_asset_keys() if k.path[-1] == "fct_stories")
    assert graph.get(fct).group_name == "analytics"
    assert defs.resolve_job_def("analytics_job") is not None


def test_fct_scenes_says_who_owns_each_field(built, engine):
    with engine.connect() as conn:
        owners = conn.execute(
            sa.text(
                "select story_id, scene_number, text_source, moment_source "
                "from analytics.fct_scenes where moment_source = 'user' or text_source = 'user'"
            )
        ).all()
        edits = conn.execute(
            sa.text("select user_edits from analytics.fct_stories where story_id = 'dbt-b'")
        ).scalar_one()
    assert [tuple(r) for r in owners] == [("dbt-b", 2, "ai", "user")]
    assert edits == 1


def test_manifest_is_reparsed_when_a_model_is_newer(tmp_path):
    import os

    from storygen_dagster.defs.dbt.project import manifest_is_stale

    (tmp_path / "models").mkdir()
    (tmp_path / "target").mkdir()
    model, manifest = tmp_path / "models" / "a.sql", tmp_path / "target" / "manifest.json"
    assert manifest_is_stale(manifest, tmp_path)  # missing
    model.write_text("select 1")
    manifest.write_text("{}")
    os.utime(model, (1_000, 1_000))
    os.utime(manifest, (2_000, 2_000))
    assert not manifest_is_stale(manifest, tmp_path)
    (tmp_path / "target" / "run_results.json").write_text("{}")  # dbt's own output: ignored
    assert not manifest_is_stale(manifest, tmp_path)
    os.utime(model, (3_000, 3_000))  # a model edited after the parse
    assert manifest_is_stale(manifest, tmp_path)
