"""Checks per story: in a range run every story gets its own evaluation of every check (the
preview API `AssetCheckEvaluation(partition=...)` under the pinned dagster 1.13); a story that
fails content safety fails alone; `up_to_date` warns for the story a user edited; every
materialization carries its code and data version."""

import dagster as dg

from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import repository as repo

BOOK = dg.AssetKey("storybook")


def _partition_status(instance, key: dg.AssetCheckKey) -> dict[str, str]:
    infos = instance.event_log_storage.get_asset_check_partition_info([key])
    return {i.partition_key: i.latest_execution_status.value for i in infos}


def _register(engine, ids, held=()):
    for sid in ids:
        name = "Grimwald" if sid in held else sid.title().replace("-", "")
        repo.register_request(
            engine, sid, StoryRequest(story_id=sid, child_name=name, scene_count=3), by="test"
        )


def test_a_three_story_run_records_each_storys_checks(instance, engine, test_defs, monkeypatch):
    monkeypatch.setenv("STORYGEN_CONTENT_BLOCKLIST", '["Grimwald"]')
    ids = ["ok-a", "held-b", "ok-c"]
    _register(engine, ids, held={"held-b"})
    [outcome] = materialize_stories(test_defs, instance, ids)
    assert not outcome.success
    safety = _partition_status(instance, dg.AssetCheckKey(BOOK, "content_safety"))
    assert safety == {"ok-a": "SUCCEEDED", "held-b": "FAILED", "ok-c": "SUCCEEDED"}
    # Every check of every story reached (the held story stops at its book) has its own row.
    for spec in story_assets.check_specs:
        status = _partition_status(instance, spec.key)
        assert status["ok-a"] == status["ok-c"] == "SUCCEEDED", spec.key
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(BOOK, "content_safety"), limit=10
    )
    [failed] = [record for record in history if record.status.value == "FAILED"]
    evaluation = failed.event.dagster_event.event_specific_data
    assert evaluation.partition == "held-b"
    assert "grimwald" in evaluation.metadata["problems"].value[0]


def test_materializations_carry_code_and_data_versions(instance, engine, test_defs):
    _register(engine, ["ver-1"])
    materialize_stories(test_defs, instance, ["ver-1"])
    for spec in story_assets.specs:
        record = instance.fetch_materializations(spec.key, limit=1).records[0]
        tags = record.asset_materialization.tags
        assert tags["dagster/code_version"] == spec.code_version
        assert len(tags["dagster/data_version"]) == 64  # the value's sha256
    again = materialize_stories(test_defs, instance, ["ver-1"])
    assert all(o.success for o in again)
    # The same inputs give the same values: the data versions do not move.
    records = instance.fetch_materializations(dg.AssetKey("structured_story"), limit=2).records
    assert len({r.asset_materialization.tags["dagster/data_version"] for r in records}) == 1


def _stale(instance, defs, asset: str, sid: str):
    # Internal API (pinned dagster 1.13.27): the resolver the UI's staleness badges use.
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest

    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    key = dg.AssetKey(asset)
    causes = [(c.category.value, c.reason) for c in resolver.get_stale_causes(key, sid)]
    return resolver.get_status(key, sid).value, causes


def test_dagster_reads_the_versions_fresh_after_a_run_stale_after_an_upstream_change(
    instance, engine, test_defs
):
    _register(engine, ["fresh-1"])
    materialize_stories(test_defs, instance, ["fresh-1"])
    for spec in story_assets.specs:
        assert _stale(instance, test_defs, spec.key.to_user_string(), "fresh-1") == ("FRESH", [])
    # A new structured_story value (what `storygen edit` reports): what is built from it is
    # stale for this story, and Dagster says why.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "structured_story", partition="fresh-1", tags={"dagster/data_version": "edited"}
        )
    )
    status, causes = _stale(instance, test_defs, "scene_moments", "fresh-1")
    assert status == "STALE" and causes[0][0] == "DATA"
