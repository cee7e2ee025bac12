"""Each asset through dg.materialize on a real instance and a real Postgres database."""

import dagster as dg
import pytest
import sqlalchemy as sa

from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain.assets import ASSETS
from storygen_dagster.domain.images import inspect_png
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.objects import ObjectStore
from tests.conftest import TEST_HEIGHT, TEST_WIDTH

KEYS = [dg.AssetKey(k) for k in ASSETS]


def _add(instance, engine, sid: str, **fields) -> None:
    repo.register_request(engine, sid, StoryRequest(story_id=sid, **fields), by="test")
    instance.add_dynamic_partitions("stories", [sid])


def test_each_asset_materializes_in_order_and_fills_rows(instance, engine, resources, object_root):
    _add(
        instance,
        engine,
        "mia-1",
        child_name="Mia",
        age=5,
        scene_count=4,
        fears=["the dark"],
        favorites={"animal": "fox"},
        value_to_teach="sharing",
    )
    for key in KEYS:
        # One asset at a time: the step runs just the selected part of each story's chain.
        result = dg.materialize(
            [story_assets],
            partition_key="mia-1",
            instance=instance,
            resources=resources,
            selection=[key],
        )
        assert result.success, key
        mats = result.get_asset_materialization_events()
        assert [(m.asset_key, m.partition) for m in mats] == [(key, "mia-1")]
    with engine.connect() as conn:
        story = (
            conn.execute(sa.text("select * from stories where story_id='mia-1'")).mappings().one()
        )
        scenes = (
            conn.execute(
                sa.text("select * from scenes where story_id='mia-1' order by scene_number")
            )
            .mappings()
            .all()
        )
    assert story["status"] == "succeeded"
    assert story["child_profile"]["name"] == "Mia"
    assert story["story_meta"]["value_to_teach"] == "sharing"
    assert story["visual_profile"]["character_prompt"]
    assert story["base_style"]["art_style"]
    assert story["book_uri"].endswith(".html")
    assert set(story["provenance"]) == {
        "structured_story",
        "visual_profile",
        "base_style",
        "character_sheet",
    }
    assert [s["scene_number"] for s in scenes] == [1, 2, 3, 4]
    store = ObjectStore(str(object_root))
    # One locked seed: on the story, the sheet's provenance and every picture's row.
    seed = story["image_seed"]
    assert seed is not None and story["provenance"]["character_sheet"]["seed"] == seed
    for scene in scenes:
        assert scene["text"] and scene["moment"] and scene["image_prompt"]
        assert set(scene["provenance"]) == {"structured_story", "scene_moments", "scene_images"}
        assert scene["image_seed"] == scene["provenance"]["scene_images"]["seed"] == seed
        info = inspect_png(store.get(scene["image_uri"]), width=TEST_WIDTH, height=TEST_HEIGHT)
        assert info.stddev > 10
    html = store.get(story["book_uri"]).decode()
    assert story["title"].replace("'", "&#39;") in html
    for scene in scenes:
        assert f"images/mia-1/{scene['image_sha256']}.png" in html
    # The first page is the cast, from the character sheet.
    sheet = story["character_sheet_uri"].rsplit("/", 1)[1]
    assert "Meet Mia and the wise old fox" in html
    assert html.index(f"images/mia-1/{sheet}") < html.index('id="scene-1"')


def test_metadata_carries_model_prompt_version_and_preview(instance, engine, resources):
    _add(instance, engine, "meta-1", scene_count=3)
    result = dg.materialize(
        [story_assets], partition_key="meta-1", instance=instance, resources=resources
    )
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    assert set(mats) == {k.to_user_string() for k in KEYS}
    meta = mats["structured_story"].materialization.metadata
    assert meta["model"].value == "storygen-offline-v1"
    assert meta["prompt_version"].value == "v1"
    assert len(meta["prompt_sha256"].value) == 64
    assert len(meta["input_fingerprint"].value) == 64
    assert meta["source"].value == "ai"
    assert meta["updated_by"].value == f"run:{result.run_id}"
    assert meta["scenes"].value == 3
    images_meta = mats["scene_images"].materialization.metadata
    assert images_meta["images"].value == 3
    assert set(images_meta["input_fingerprints"].value) == {"1", "2", "3"}
    assert "data:image/jpeg;base64," in images_meta["preview"].value
    # Every check ran, once, and passed.
    checks = result.get_asset_check_evaluations()
    assert {(c.asset_key.to_user_string(), c.check_name) for c in checks} == {
        (s.asset_key.to_user_string(), s.name) for s in story_assets.check_specs
    }
    assert all(c.passed for c in checks)


def test_multi_partition_run_materializes_every_story(instance, engine, test_defs):
    from storygen_dagster.pipeline import materialize_stories

    ids = [f"batch-{i}" for i in range(4)]
    for i, sid in enumerate(ids):
        repo.register_request(engine, sid, StoryRequest(story_id=sid, age=3 + i % 4), by="test")
    outcomes = materialize_stories(test_defs, instance, ids)
    assert len(outcomes) == 1 and outcomes[0].success
    run = instance.get_run_by_id(outcomes[0].run_id)
    assert run.tags["dagster/asset_partition_range_start"] == "batch-0"
    frame = reads.story_overview(engine)
    assert sorted(frame[frame.status == "succeeded"].story_id) == ids
    for key in ("structured_story", "scene_images", "storybook"):
        assert set(ids) <= set(instance.get_materialized_partitions(dg.AssetKey(key)))


def test_invalid_partition_key_added_by_hand_fails_clearly(instance, resources):
    instance.add_dynamic_partitions("stories", ["../escape"])
    result = dg.materialize(
        [story_assets],
        partition_key="../escape",
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("story_assets")
    assert "story_id '../escape' is invalid" in str(failure.user_failure_data.description)


@pytest.mark.parametrize("missing_upstream", ["scene_images", "storybook"])
def test_asset_without_upstream_fails_and_marks_story_failed(
    instance, engine, resources, missing_upstream
):
    _add(instance, engine, "lonely-1")
    result = dg.materialize(
        [story_assets],
        partition_key="lonely-1",
        instance=instance,
        resources=resources,
        selection=[dg.AssetKey(missing_upstream)],
        raise_on_error=False,
    )
    assert not result.success
    row = reads.story_overview(engine, "lonely-1").iloc[0]
    assert row["status"] == "failed"
    assert "lonely-1" in row["error"] and "structured_story" in row["error"]


def test_one_held_story_fails_alone_in_a_batch(instance, engine, test_defs, monkeypatch):
    """A story whose text trips the content-safety check is held; the rest of the batch is
    built and materialized, and only the held story's partition shows as failed."""
    from storygen_dagster.pipeline import materialize_stories

    monkeypatch.setenv("STORYGEN_CONTENT_BLOCKLIST", '["Grimwald"]')
    ids = ["ok-1", "held-1", "ok-2"]
    for sid in ids:
        name = "Grimwald" if sid == "held-1" else sid.title()
        repo.register_request(
            engine, sid, StoryRequest(story_id=sid, child_name=name, scene_count=3), by="test"
        )
    [outcome] = materialize_stories(test_defs, instance, ids)
    assert not outcome.success  # the run reports the held story...
    frame = reads.story_overview(engine).set_index("story_id")
    assert frame.at["ok-1", "status"] == frame.at["ok-2", "status"] == "succeeded"
    assert frame.at["held-1", "status"] == "held"
    assert "content_safety" in frame.at["held-1", "error"]
    assert "grimwald" in frame.at["held-1", "error"]
    assert not isinstance(frame.at["held-1", "book"], str)  # no book
    # ...and Dagster shows it per partition: the others materialized, the held one failed.
    book = dg.AssetKey("storybook")
    assert set(instance.get_materialized_partitions(book)) == {"ok-1", "ok-2"}
    status = instance.get_status_by_partition(
        book, ids, test_defs.get_assets_def(book).partitions_def
    )
    assert status["held-1"] == dg.AssetPartitionStatus.FAILED
    assert status["ok-1"] == dg.AssetPartitionStatus.MATERIALIZED
    # The images of the held story were built (it fails at the book, its last step).
    assert "held-1" in instance.get_materialized_partitions(dg.AssetKey("scene_images"))
    infos = instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(book, "content_safety")]
    )
    by_story = {i.partition_key: i.latest_execution_status.value for i in infos}
    assert by_story == {"ok-1": "SUCCEEDED", "held-1": "FAILED", "ok-2": "SUCCEEDED"}
